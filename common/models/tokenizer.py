"""The model's tokenizer, ready for batching: a pad token for decoder-only models, a prefix space for words given one by one."""

import logging
import pickle
from pathlib import Path

from safetensors import SafetensorError
from transformers import AutoConfig, AutoTokenizer

from common.config.errors import OptionError, require_extra

logger = logging.getLogger(__name__)

MIN_ORDINARY_TOKENS = 10  # fewer besides [CLS], [PAD], ...: no vocabulary was found (real ones hold thousands)


# What from_pretrained raises for a folder it cannot use: missing, truncated or refused files, no network
LOAD_ERRORS = (OSError, ValueError, SafetensorError, pickle.UnpicklingError)
# and a tokenizer: the tokenizers library raises a bare Exception for a damaged tokenizer.json
TOKENIZER_LOAD_ERRORS = (*LOAD_ERRORS, Exception)

# Byte-level BPE tokenizers mark a word start with a space; words given one by one need it added.
PREFIX_SPACE_MODELS = {"roberta", "gpt2", "bloom", "deberta", "longformer", "bart", "mvp"}


def load_error(name: str, error: Exception) -> str:
    """Why loading `name` failed, in a few words: a missing local folder, or the library's first line."""
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().exists():
        return "no such folder"
    return (str(error).splitlines() or [type(error).__name__])[0]


def gguf_location(model: str, gguf_file: str) -> tuple[str, str]:
    """(folder, file name) of a GGUF checkpoint given as a path or as a name inside the model folder; checked."""
    path = Path(gguf_file)
    if not path.is_file():
        path = Path(model) / gguf_file
    if not path.is_file():
        raise OptionError(f"--gguf_file {gguf_file}: no such file (looked for it as a path and in {model})")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise OptionError(f"--gguf_file {path}: not a GGUF file (it does not start with the GGUF magic bytes)")
    require_extra("gguf", "--gguf_file", "decoder")  # transformers reads GGUF files through it
    return str(path.parent), path.name


def hub_settings(model_args) -> dict:
    """The from_pretrained keywords every load shares: cache, revision, remote code, and a GGUF file if given."""
    if getattr(model_args, "gguf_file", None):
        model_args.model_name_or_path, model_args.gguf_file = gguf_location(model_args.model_name_or_path,
                                                                            model_args.gguf_file)
    return {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision,
            "trust_remote_code": model_args.trust_remote_code,
            **({"gguf_file": model_args.gguf_file} if getattr(model_args, "gguf_file", None) else {})}


def load_tokenizer(model_args, words_given: bool = False):
    """The model's tokenizer; `words_given` for pre-split words (token classification)."""
    kwargs = {}
    model_hub = hub_settings(model_args)  # with --gguf_file, model_name_or_path becomes the file's folder
    name = model_args.tokenizer_name or model_args.model_name_or_path
    # a tokenizer named apart comes from its own files, not from the model's GGUF file
    hub = {k: v for k, v in model_hub.items() if k != "gguf_file"} if model_args.tokenizer_name else model_hub
    try:
        if words_given:
            model_type = AutoConfig.from_pretrained(model_args.model_name_or_path, **model_hub).model_type
            if model_type in PREFIX_SPACE_MODELS:
                kwargs["add_prefix_space"] = True
        tokenizer = AutoTokenizer.from_pretrained(name, **hub, **kwargs)
    except TOKENIZER_LOAD_ERRORS as error:  # no such folder or Hub model, no network, files it cannot read
        raise OptionError(f"--model_name_or_path/--tokenizer_name {name}: cannot load its tokenizer "
                          f"({load_error(name, error)})") from None
    check_has_vocabulary(tokenizer, name)
    if tokenizer.pad_token is None:
        # Decoder-only models (GPT-2, Llama, ...) ship without a pad token; batching needs one, and the
        # classification head finds each row's last real token by looking for it.
        if tokenizer.eos_token is None:
            raise OptionError(f"{model_args.model_name_or_path}: the tokenizer has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
        logger.info(f"The tokenizer has no pad token: using its EOS token {tokenizer.eos_token!r}")
    if tokenizer.padding_side != "right":
        # Left padding shifts a row's absolute positions (GPT-2 counts them from the first token, pad or
        # not): a row would score differently alone and in a batch. Classifiers pad on the right.
        logger.info(f"The tokenizer pads on the {tokenizer.padding_side}: padding on the right instead")
        tokenizer.padding_side = "right"
    ids = tokenizer("a b")["input_ids"]
    if len(ids) > 1 and ids[-1] == tokenizer.pad_token_id:
        # The tokenizer appends its pad token (an EOS used as pad) to every text: a decoder's head, which
        # reads the last token that is not padding, would read the one before it. Pad with another token.
        appended = tokenizer.pad_token
        spare = [t for t in tokenizer.all_special_tokens if tokenizer.convert_tokens_to_ids(t) not in ids]
        if spare:
            tokenizer.pad_token = spare[0]
        else:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})  # the model's embeddings grow to match
        logger.warning(f"The tokenizer appends {appended!r}, which was also its pad token: padding with "
                       f"{tokenizer.pad_token!r} instead, so the classifier reads each text's last real token")
    return tokenizer


def check_has_vocabulary(tokenizer, name: str, tokenizer_flag: bool = True) -> None:
    """transformers builds an empty tokenizer from a folder with a model but no tokenizer files: every word would
    become [UNK], and a run would train (or an export agree) on nothing without a word of warning."""
    ordinary = len(tokenizer) - len(set(tokenizer.all_special_ids))
    if ordinary < MIN_ORDINARY_TOKENS:
        raise OptionError(f"{name}: its tokenizer knows only {len(tokenizer)} tokens ({ordinary} besides special "
                          "tokens): the folder has no tokenizer files (tokenizer.json, vocab.txt, ...). Copy them from "
                          "the model it came from" + (", or give that model's name with --tokenizer_name"
                                                      if tokenizer_flag else ""))


def require_fast_tokenizer(tokenizer, model_name: str) -> None:
    """Token classification maps subwords to words with word_ids(), which only fast tokenizers give."""
    if not getattr(tokenizer, "is_fast", False):
        raise OptionError(f"{model_name}: token classification needs a fast tokenizer (one that gives word_ids); "
                         f"{type(tokenizer).__name__} is not. Use a model with a tokenizer.json, or convert it.")
