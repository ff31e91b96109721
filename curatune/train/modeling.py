"""The classifier: any Hugging Face encoder, pooled the way it was pretrained, then one linear layer.

BERT-style ``*ForSequenceClassification`` heads read the [CLS] token through the pretraining
pooler; sentence-embedding models such as all-MiniLM-L6-v2 were trained with mean pooling and
never used that pooler, so a head there learns slowly. This class pools like the base model
(``pool``), L2-normalises like the sentence-transformers pipeline (and like
``curatune.embeddings.Encoder``, so a linear probe fitted on Encoder-style features is exactly this
head at initialisation), then applies dropout and ``classifier``.

Importing this module registers the class with the Auto classes, so a saved model loads with
``AutoModelForSequenceClassification.from_pretrained(dir)`` (and ``pipeline("text-classification")``)
after ``import curatune.train``. A saved model also carries this file (config.json ``auto_map``):
without curatune, plain transformers loads it with ``trust_remote_code=True``. Without either,
transformers refuses the unknown ``model_type`` instead of silently building a differently pooled
model. The file imports only torch and transformers so that it runs where curatune is not installed.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "curatune_classifier"

# LoRA targets per architecture: every linear layer of attention and feed-forward blocks. peft's
# own defaults (query/value only) leave most of the network frozen and trail full fine-tuning.
LORA_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "key", "value", "dense"],
    "roberta": ["query", "key", "value", "dense"],
    "xlm-roberta": ["query", "key", "value", "dense"],
    "camembert": ["query", "key", "value", "dense"],
    "electra": ["query", "key", "value", "dense"],
    "mpnet": ["q", "k", "v", "o", "intermediate.dense", "output.dense"],
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"],
    "deberta-v2": ["query_proj", "key_proj", "value_proj", "dense"],
    "modernbert": ["Wqkv", "Wo", "Wi"],
}


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool token states [B, T, H] into sentence vectors [B, H] (also curatune.embeddings.Encoder's)."""
    if mode == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return hidden[:, 0]


def lora_targets(model_type: str) -> list[str] | str:
    """Per-architecture default LoRA target modules; peft's "all-linear" for anything else."""
    return LORA_TARGETS.get(model_type, "all-linear")


class CuratuneClassifierConfig(PretrainedConfig):
    """Holds the encoder's own config (``encoder``, a dict with its ``model_type``) and the head."""

    model_type = MODEL_TYPE

    def __init__(self, encoder: dict | None = None, pooling: str = "mean", normalize: bool = True,
                 classifier_dropout: float = 0.1, **kwargs) -> None:
        self.encoder = dict(encoder or {"model_type": "bert"})
        self.pooling = pooling
        self.normalize = normalize
        self.classifier_dropout = classifier_dropout
        super().__init__(**kwargs)

    def encoder_config(self) -> PretrainedConfig:
        enc = dict(self.encoder)
        return AutoConfig.for_model(enc.pop("model_type"), **enc)

    @property
    def hidden_size(self) -> int:
        # Through the encoder's own config class: its attribute_map names the field (n_embd, dim, d_model).
        return int(self.encoder_config().hidden_size)


def _backbone(encoder_config: PretrainedConfig) -> PreTrainedModel:
    # The pretraining pooler is never used here; leaving it in would give DDP unused parameters.
    try:
        return AutoModel.from_config(encoder_config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(encoder_config)


class CuratuneForSequenceClassification(PreTrainedModel):
    config_class = CuratuneClassifierConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # forward computes a per-batch mean loss; the Trainer scales it for gradient accumulation.
    accepts_loss_kwargs = False

    def __init__(self, config: CuratuneClassifierConfig) -> None:
        super().__init__(config)
        self.backbone = _backbone(config.encoder_config())
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        # Class weights for the loss (training only; not saved with the model).
        self.register_buffer("loss_weights", torch.ones(config.num_labels), persistent=False)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # The backbone initialises itself (or is loaded); only the head is ours.
        if module is getattr(self, "classifier", None):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif module is self:
            # from_pretrained refills non-persistent buffers with uninitialised memory and leaves them
            # to this method: without this a reloaded model's loss used garbage class weights.
            with torch.no_grad():
                self.loss_weights.fill_(1.0)

    def features(self, last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors the head reads: pooled like pretraining, L2-normalised."""
        vec = pool(last_hidden_state, attention_mask, self.config.pooling)
        return nn.functional.normalize(vec, dim=-1) if self.config.normalize else vec

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, return_dict: bool | None = None,
                **unused) -> SequenceClassifierOutput:
        # ``unused``: wrappers (peft, pipelines) pass arguments an encoder classifier has no use for.
        if attention_mask is None:
            ref = input_ids if input_ids is not None else inputs_embeds[..., 0]
            attention_mask = torch.ones(ref.shape[:2], dtype=torch.long, device=ref.device)
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                            output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                            return_dict=True, **extra)
        feats = self.features(out.last_hidden_state, attention_mask)
        logits = self.classifier(self.dropout(feats).to(self.classifier.weight.dtype))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels.view(-1),
                                               weight=self.loss_weights.to(logits.device, torch.float32))
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                        attentions=out.attentions)


def build_classifier(base_path: str, labels: list[str], *, pooling: str, normalize: bool = True,
                     dropout: float | None = None) -> CuratuneForSequenceClassification:
    """The pretrained encoder from ``base_path`` under a fresh head for ``labels``."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    base_cfg = AutoConfig.from_pretrained(base_path)
    if dropout is None:
        dropout = float(getattr(base_cfg, "classifier_dropout", None) or getattr(base_cfg, "hidden_dropout_prob", 0.1))
    cfg = CuratuneClassifierConfig(
        encoder=_shareable(base_cfg.to_dict()), pooling=pooling, normalize=normalize, classifier_dropout=dropout,
        id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)},
        pad_token_id=getattr(base_cfg, "pad_token_id", None),
    )
    model = CuratuneForSequenceClassification(cfg)
    # The base checkpoint carries a pooler this model does not have; that report is expected noise.
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        try:
            backbone = AutoModel.from_pretrained(base_path, add_pooling_layer=False)
        except TypeError:
            backbone = AutoModel.from_pretrained(base_path)
    finally:
        hf_logging.set_verbosity(previous)
    model.backbone = backbone
    model.config.encoder = _shareable(backbone.config.to_dict())
    return model


def _shareable(encoder: dict) -> dict:
    """The encoder's config without where it was loaded from: a saved model is shared, and a local
    path can name the user's home folder."""
    return {k: v for k, v in encoder.items() if k != "_name_or_path"}


AutoConfig.register(MODEL_TYPE, CuratuneClassifierConfig, exist_ok=True)
AutoModelForSequenceClassification.register(CuratuneClassifierConfig, CuratuneForSequenceClassification,
                                            exist_ok=True)
# save_pretrained also copies this file beside the weights and names it in config.json's auto_map, so
# plain transformers loads a saved model with trust_remote_code=True and no curatune installed (this
# module imports only torch and transformers for that reason).
CuratuneClassifierConfig.register_for_auto_class()
CuratuneForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
