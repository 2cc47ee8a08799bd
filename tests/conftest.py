"""Shared pytest fixtures, and the per-process settings that let the suite run on several pytest-xdist workers."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Before anything imports transformers (which reads HF_MODULES_CACHE once, at import): every test process copies
# the `trust_remote_code` modules it loads into a cache of its own, not into the user's ~/.cache, and two xdist
# workers never write the same `transformers_modules/<folder name>` at once.
if "HF_MODULES_CACHE" not in os.environ:
    _modules_cache = tempfile.mkdtemp(prefix="adaptive-zoo-tests-modules-")
    os.environ["HF_MODULES_CACHE"] = _modules_cache
    atexit.register(shutil.rmtree, _modules_cache, ignore_errors=True)

# Under xdist (scripts/test.sh runs one worker per core), each worker gets its share of the cores, so that two
# workers do not run 2 x 2 math threads on 2 cores; the subprocesses tests start inherit the same share.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    os.environ.setdefault("OMP_NUM_THREADS", _threads)
    os.environ.setdefault("MKL_NUM_THREADS", _threads)

import pytest  # noqa: E402

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
