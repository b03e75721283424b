"""The shipped voice map, learned from real speakers' videos (`flowvq train voice`, train.py): above
evaluate (it measures lips with its tools) and generate (whose voicemap.py it fits)."""
