"""hybridsearch: find small, fast heterogeneous students of a BERT-family model.

Importing the package stays light (no torch, no transformers); heavy modules load
where they are used. Importing `hybridsearch` registers the student model classes
with transformers' Auto classes lazily, the first time transformers is asked for
them (see `hybridsearch.students.hf`).
"""

__version__ = "0.1.0"

from hybridsearch import _hf_hook  # noqa: E402
from hybridsearch.errors import UserError  # noqa: E402

_hf_hook.install()  # AutoConfig / AutoModelForSequenceClassification know "hybridsearch-student"

__all__ = ["UserError", "__version__"]
