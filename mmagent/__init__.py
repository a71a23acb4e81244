"""mmagent: multimodal assistants on a local vision-language model.

Importing this package is cheap on purpose (no torch, no transformers): heavy libraries load inside the
functions that need them.
"""

from mmagent.config import Config, load_config
from mmagent.errors import MMAgentError

__version__ = "0.1.0"
__all__ = ["Config", "MMAgentError", "load_config", "__version__"]
