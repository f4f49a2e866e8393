"""Item encoders (text, image, CLIP, aligned, audio, video) and the feature store.

Importing this package registers every built-in encoder (each module calls
``register_encoder`` at import); model weights load lazily, on first use.

Example:
    >>> from prismrec.encoders import available_encoders, create_encoder
    >>> "text:minilm" in available_encoders()
    True
"""
from prismrec.encoders.base import EncodedItems, Encoder, hash_files, hash_state_dict
from prismrec.encoders.registry import available_encoders, create_encoder, register_encoder
from prismrec.encoders.store import EncodeReport, FeatureStore, encode_catalog
from prismrec.encoders import text  # noqa: F401  (registers text:minilm, text:<folder>)
from prismrec.encoders import align  # noqa: F401,E402  (registers align:<dir>, adapted-text:<dir>)
from prismrec.encoders import image  # noqa: F401  (registers image:efficientnet-lite0)
from prismrec.encoders import audio  # noqa: F401,E402  (registers audio:logmel)
from prismrec.encoders import video  # noqa: F401,E402  (registers video:<image encoder spec>)
from prismrec.encoders import clip  # noqa: F401  (registers clip:, clip-image:, clip-text:)
