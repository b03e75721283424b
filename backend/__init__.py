"""FlowVQ backend: audio -> facial animation curves and face plates (FlowVQTalker)."""
import warnings

__version__ = "0.1.0"

# face_recognition_models (dlib's model files) imports pkg_resources; setuptools<81 is pinned for it
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
