"""T5's SentencePiece vocabulary, its file chosen by gin (for offline copies)."""

from __future__ import annotations

import gin
import seqio

# The vocabulary of every public T5 checkpoint (32,000 pieces + 100 sentinels).
DEFAULT_SPM_PATH = "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model"
EXTRA_IDS = 100


@gin.configurable
def sentencepiece_model_path(path: str = DEFAULT_SPM_PATH) -> str:
    """Path of the SentencePiece model; bind `path` to use a local copy."""
    return path


class T5Vocabulary(seqio.SentencePieceVocabulary):
    """seqio's SentencePiece vocabulary whose file is looked up (from gin) when first used.

    Tasks are registered at import time, before gin is parsed; resolving the path
    lazily lets `sentencepiece_model_path.path` point the already-registered
    GLUE/SuperGLUE tasks at a local file.
    """

    def __init__(self):
        super().__init__(DEFAULT_SPM_PATH, extra_ids=EXTRA_IDS)

    @property
    def sentencepiece_model_file(self) -> str:
        return sentencepiece_model_path()

    def _model_context(self):
        path = sentencepiece_model_path()
        if self._sentencepiece_model_file != path:
            self._sentencepiece_model_file, self._model = path, None
        return super()._model_context()
