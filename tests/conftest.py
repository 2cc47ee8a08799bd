"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

# ---------------------------------------------------------------------------------------------------------------
# Loopback Hub (tests/hub_server.py)
# ---------------------------------------------------------------------------------------------------------------
from hub_server import LoopbackHub


@pytest.fixture
def loopback_hub(tmp_path_factory):
    """A fresh in-memory Hub on 127.0.0.1, with this process's Hub client pointed at it; stopped at test end.

    In-process: ``huggingface_hub`` reads ``HF_ENDPOINT`` (and HF_HOME, HF_HUB_CACHE, HF_HUB_DISABLE_XET, ...)
    into ``huggingface_hub.constants`` when it is imported, so setting the variables is not enough.
    ``hub.configure_client`` also patches those constants, the endpoint of ``huggingface_hub.hf_api.api`` (the
    instance behind ``create_repo``/``upload_folder``/...) and resets ``transformers.utils.hub._hf_api`` (a cached
    ``HfApi``); everything is restored after the test. The HF cache is an empty per-test folder, ``hub.hf_home``.
    Plain ``push_to_hub``, ``HfApi()``, ``from_pretrained("user/repo")``, ``hf_hub_download`` then just work.

    Fresh subprocess: pass ``env=loopback_hub.subprocess_env(hf_home=some_empty_dir)`` to ``subprocess.run``; it
    sets HF_ENDPOINT, HF_TOKEN, HF_HUB_DISABLE_XET=1, HF_HOME/HF_HUB_CACHE/HF_MODULES_CACHE and drops the
    offline switches. The child reads them at import; nothing else is needed.

    Inspect the remote with ``hub.files(repo_id, revision="main")`` and ``hub.commits(repo_id)``; every request
    is in ``hub.requests`` and unrouted ones in ``hub.unknown_requests``. ``hub.token`` is the token in HF_TOKEN
    (any non-empty token is accepted).
    """
    hf_home = tmp_path_factory.mktemp("hf_home")
    hub = LoopbackHub()
    hub.start()
    try:
        with hub.configure_client(hf_home=hf_home):
            yield hub
    finally:
        hub.stop()


# ---------------------------------------------------------------------------------------------------------------
# Tiny assets (tests/tiny.py)
# ---------------------------------------------------------------------------------------------------------------
from tiny import save_tiny_bert, save_tiny_tokenizer, write_tiny_classification_csv  # noqa: E402


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    save_tiny_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A tiny random BERT + tokenizer folder, used as `--base-model` in CLI tests."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory):
    """A 3-class CSV with custom column names (sentence, category)."""
    return write_tiny_classification_csv(tmp_path_factory.mktemp("tiny_data") / "toy.csv")
