"""FlowVQ backend: audio -> facial animation curves and face plates (FlowVQTalker)."""
__version__ = "0.1.0"
