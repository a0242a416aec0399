"""DPR, the Definite Pronoun Resolution data (Rahman & Ng 2012; TFDS
`definite_pronoun_resolution`, 1,322 training sentences), in the simple WSC format.

T5 trains on it in its SuperGLUE mixture (`dpr_v001_simple`, rate 1,322) beside the
simple WSC, whose Winograd-style pronoun problems it resembles; it is never evaluated
(no leaderboard task), so only its train split is registered.
"""

from __future__ import annotations

from hyperprompt.tasks import text_formats
from hyperprompt.tasks.tfds_tasks import add_tfds_task

TFDS_NAME = "definite_pronoun_resolution:1.1.0"
TASK = "dpr_simple_train"


def register() -> None:
    add_tfds_task(TASK, TFDS_NAME, [text_formats.dpr_simple_text], None, [], ["train"])


register()
