"""transformers integration: `HybridStudentConfig` and `HybridStudentForSequenceClassification`.

Registered with `AutoConfig` (model_type "hybridsearch-student") and
`AutoModelForSequenceClassification` by `register()`. Users never call it:
`import hybridsearch` installs an import hook (`hybridsearch._hf_hook`) that runs
`register()` the moment transformers' auto classes are imported (or at once if
they already are), so `import hybridsearch` stays free of torch / transformers
(registering eagerly would cost ~3 s: transformers' config module imports torch).
Then, with no trust_remote_code and no pickle:

    import hybridsearch
    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained(exported_dir)

`from_pretrained` reads the directory with `export.load_student` (safetensors
only); `save_pretrained` writes it with `export.save_student`.
"""

from __future__ import annotations

import torch
from transformers.configuration_utils import PretrainedConfig
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.modeling_utils import PreTrainedModel

MODEL_TYPE = "hybridsearch-student"


class HybridStudentConfig(PretrainedConfig):
    """HF config of an exported student; `arch` is the StudentArch as a dict."""

    model_type = MODEL_TYPE

    def __init__(self, arch: dict | None = None, **kwargs):
        self.arch = arch
        super().__init__(**kwargs)

    def student_arch(self):
        from hybridsearch.students.arch import StudentArch

        return StudentArch.from_dict(self.arch)


def config_from_arch(arch) -> HybridStudentConfig:
    """The HF config of a StudentArch (labels, architecture name, the arch itself)."""
    id2label = arch.id2label or {i: f"LABEL_{i}" for i in range(arch.num_labels)}
    return HybridStudentConfig(
        arch=arch.to_dict(),
        num_labels=arch.num_labels,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        architectures=["HybridStudentForSequenceClassification"],
    )


class HybridStudentForSequenceClassification(PreTrainedModel):
    """A HybridStudent behind transformers' sequence-classification interface."""

    config_class = HybridStudentConfig
    base_model_prefix = "student"
    main_input_name = "input_ids"

    def __init__(self, config: HybridStudentConfig, student=None):
        super().__init__(config)
        self.post_init()  # before the student is attached: HF's weight init must not touch it
        if student is None:
            from hybridsearch.students.model import HybridStudent

            student = HybridStudent(config.student_arch())
        self.student = student

    def _init_weights(self, module):  # the student initialises itself (or is loaded)
        return

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, **kwargs):
        """Load an exported directory (local path; or a hub repo fetched with huggingface_hub)."""
        import os

        from hybridsearch.students.export import load_student

        path = str(pretrained_model_name_or_path)
        if not os.path.isdir(path):
            from huggingface_hub import snapshot_download

            path = snapshot_download(path, revision=kwargs.get("revision"))
        if not isinstance(config, HybridStudentConfig):
            config = HybridStudentConfig.from_pretrained(path)
        model = cls(config, student=load_student(path)).eval()
        dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
        if dtype not in (None, "auto"):
            model = model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        return model

    def save_pretrained(self, save_directory, tokenizer=None, **kwargs):
        from hybridsearch.students.export import save_student

        save_student(self.student, save_directory, tokenizer=tokenizer)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                output_hidden_states=None, output_attentions=None, return_dict=None, **kwargs):
        out = self.student(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                           output_hidden_states=bool(output_hidden_states),
                           output_attentions=bool(output_attentions))
        loss = None
        if labels is not None:
            if self.config.num_labels == 1:
                loss = torch.nn.functional.mse_loss(out.logits.squeeze(-1), labels.float())
            else:
                loss = torch.nn.functional.cross_entropy(out.logits, labels)
        result = SequenceClassifierOutput(loss=loss, logits=out.logits, hidden_states=out.hidden_states,
                                          attentions=out.attentions)
        return result if return_dict is not False else result.to_tuple()


def register() -> None:
    """Register the config and model with transformers' Auto classes (idempotent)."""
    import sys

    if "transformers.models.auto.configuration_auto" in sys.modules:
        sys.modules["transformers.models.auto.configuration_auto"].AutoConfig.register(
            MODEL_TYPE, HybridStudentConfig, exist_ok=True
        )
    if "transformers.models.auto.modeling_auto" in sys.modules:
        sys.modules["transformers.models.auto.modeling_auto"].AutoModelForSequenceClassification.register(
            HybridStudentConfig, HybridStudentForSequenceClassification, exist_ok=True
        )


register()
