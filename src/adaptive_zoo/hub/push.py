"""Pushing a saved model folder to the Hugging Face Hub as one commit."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi

from .folder import check_hub_folder

__all__ = ["HubUnreachableError", "iter_upload_files", "push_folder"]


class HubUnreachableError(ConnectionError):
    """The Hub endpoint could not be reached (connection refused, DNS, timeout, offline mode)."""


def _is_network_error(error: BaseException) -> bool:
    """A failure to reach the server at all (not an HTTP error answer), from the HTTP client huggingface_hub uses
    (httpx, httpx2, requests) or the standard library."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"TransportError", "ConnectError", "TimeoutException", "ConnectionError"})


def unreachable_hub_error(endpoint: str, error: BaseException) -> HubUnreachableError:
    configured = os.environ.get("HF_ENDPOINT")
    where = f"HF_ENDPOINT={configured}" if configured else "HF_ENDPOINT is not set, so the default"
    return HubUnreachableError(
        f"cannot reach the Hub at {endpoint} ({type(error).__name__}: {error}); check the network connection, and "
        f"HF_ENDPOINT if the Hub is elsewhere ({where} is used)."
    )


def iter_upload_files(folder: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of the files :func:`push_folder` uploads, sorted.

    Left out: anything with a path component starting with ``.`` (``.git``, ``.cache``, ``.tmp-*``, editor
    files...), ``__pycache__`` folders and ``*.pyc``. Python modules are kept, including names starting with
    ``_`` (unlike ``Trainer.push_to_hub``, which ignores ``_*``): a Hub repo without its modelling code cannot be
    loaded with ``trust_remote_code``.
    """
    folder = Path(folder)
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(files):
            if name.startswith(".") or name.endswith(".pyc"):
                continue
            out.append((Path(root) / name).relative_to(folder).as_posix())
    return sorted(out)


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Upload a model folder to ``repo_id`` on the Hub in a single commit; return the commit URL.

    The folder is checked with :func:`~adaptive_zoo.hub.folder.check_hub_folder` first: a broken folder (no
    ``config.json``, no weights, a module named in ``auto_map`` missing, ...) raises before anything is sent.
    Then the repo is created if needed (``exist_ok``; ``private`` only applies to a new repo), the ``revision``
    branch is created if it is not ``main`` and does not exist, and all files of :func:`iter_upload_files` go
    up in one ``create_commit``. A commit is atomic on the Hub: if the push fails, the remote is as it was.
    Files identical to the remote ones are skipped by the client; if nothing changed, no commit is made and the
    URL of the current head commit is returned. The commit sha is the URL's last path component.

    ``token`` defaults to the logged-in token / ``HF_TOKEN``; ``endpoint`` to ``HF_ENDPOINT``. A Hub that cannot be
    reached at all raises :class:`HubUnreachableError` naming the endpoint.
    """
    folder = Path(folder)
    check_hub_folder(folder)
    files = iter_upload_files(folder)

    api = HfApi(endpoint=endpoint, token=token)
    try:
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        repo_id = repo_url.repo_id  # namespace filled in when `repo_id` had none
        if revision is not None and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")

        operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(folder / rel)) for rel in files]
        # create_commit rather than upload_folder: with hf_xet installed, upload_folder switches to a pipelined upload
        # that may split a folder into several commits; a model must land in one atomic commit.
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message or f"Upload {folder.name} with adaptive-zoo",
            revision=revision,
            repo_type="model",
        )
    except Exception as error:
        if _is_network_error(error):
            raise unreachable_hub_error(api.endpoint, error) from error
        raise
    return str(info.commit_url)
