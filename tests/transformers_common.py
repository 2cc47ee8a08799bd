"""transformers' own common model tests (`ModelTesterMixin`, `ConfigTester`), taken from the sdist of the INSTALLED
transformers release on PyPI, never copied into this repository.

`common_tests_package()` returns the imported package (`test_modeling_common`, `test_configuration_common`): it
downloads `transformers==<installed version>` as a source distribution with pip (the only network this needs is
PyPI), extracts its `tests/*.py` into a cache folder outside the repository and imports them from there. The cache is
`$ADAPTIVE_ZOO_TRANSFORMERS_TESTS` if set, else `~/.cache/adaptive-zoo/transformers-tests`; one folder per version,
so an upgrade fetches the matching tests. A file lock keeps two pytest-xdist workers from fetching at once.

The sdist ships the top-level `tests/*.py` files only. `test_modeling_common.py` and `test_configuration_common.py`
import three modules from subfolders that the sdist does not ship; where the sdist lacks one, a stand-in is written
beside the extracted files (listed in the version folder's missing.txt):

- `tests/generation/test_utils.py` (`GenerationTesterMixin`): an empty class; the generation tests do not run.
- `tests/exporters/test_export.py` (`ExportTesterMixin`, the base class of `ModelTesterMixin`): an empty class; the
  export tests do not run (the zoo's exports are tested by tests/test_switches.py).
- `tests/utils/test_configuration_utils.py` (`config_common_kwargs`): an empty dict, so `ConfigTester`'s
  `check_config_arguments_init` (part of `test_config`) checks nothing.

Run `python tests/transformers_common.py` to fetch ahead of the tests (scripts/test.sh does, so CI fetches once, before
the workers start, and fails loudly if PyPI cannot be reached).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "hf_common_tests"  # the extracted tests/ folder, importable under this name (it uses relative imports)

# module path inside tests/ -> the stand-in written where the sdist lacks it
STAND_INS = {
    "generation/test_utils.py": (
        "class GenerationTesterMixin:\n"
        "    adaptive_zoo_stand_in = True  # tests/generation/ is not in the transformers sdist\n"
    ),
    "exporters/test_export.py": (
        "class ExportTesterMixin:\n"
        "    adaptive_zoo_stand_in = True  # tests/exporters/ is not in the transformers sdist\n"
    ),
    "utils/test_configuration_utils.py": (
        "config_common_kwargs = {}  # tests/utils/ is not in the transformers sdist\n"
    ),
}


class CommonTestsUnavailable(RuntimeError):
    """The sdist could not be fetched (no network to PyPI, or no such release there)."""


def installed_version() -> str:
    from importlib.metadata import version

    return version("transformers")


def cache_root() -> Path:
    configured = os.environ.get("ADAPTIVE_ZOO_TRANSFORMERS_TESTS")
    return Path(configured) if configured else Path.home() / ".cache" / "adaptive-zoo" / "transformers-tests"


def version_dir(version: str | None = None) -> Path:
    return cache_root() / (version or installed_version())


def fetch(version: str | None = None) -> Path:
    """The folder holding package `hf_common_tests` for `version` (default: installed), fetched once."""
    version = version or installed_version()
    folder = version_dir(version)
    package = folder / PACKAGE
    if (package / "test_modeling_common.py").is_file() and (folder / "missing.txt").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(folder) + ".lock"):
        if (package / "test_modeling_common.py").is_file() and (folder / "missing.txt").is_file():
            return folder
        with tempfile.TemporaryDirectory(dir=folder.parent) as download:
            result = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                 "--disable-pip-version-check", "-q", f"transformers=={version}", "-d", download],
                capture_output=True, text=True,
            )
            archives = list(Path(download).glob("transformers-*.tar.gz"))
            if result.returncode != 0 or not archives:
                raise CommonTestsUnavailable(
                    f"could not download the transformers {version} sdist from PyPI with pip "
                    f"(exit {result.returncode}): {(result.stderr or result.stdout).strip()[-400:]}"
                )
            staging = Path(tempfile.mkdtemp(dir=folder, prefix="staging-"))
            with tarfile.open(archives[0]) as archive:
                prefix = f"transformers-{version}/tests/"
                members = [m for m in archive.getmembers() if m.name.startswith(prefix) and m.isfile()]
                if not any(m.name == prefix + "test_modeling_common.py" for m in members):
                    raise CommonTestsUnavailable(f"the transformers {version} sdist has no tests/test_modeling_common.py")
                for member in members:
                    member.name = member.name[len(prefix):]
                    archive.extract(member, staging / PACKAGE, filter="data")
        missing = []
        for relative, text in STAND_INS.items():
            path = staging / PACKAGE / relative
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                missing.append(relative)
        for init in [staging / PACKAGE, *(p for p in (staging / PACKAGE).rglob("*") if p.is_dir())]:
            (init / "__init__.py").touch()
        (staging / "missing.txt").write_text("".join(f"{name}\n" for name in missing))
        if package.exists():
            import shutil

            shutil.rmtree(package)
        (staging / PACKAGE).rename(package)
        (staging / "missing.txt").rename(folder / "missing.txt")
        staging.rmdir()
    return folder


def missing_from_sdist(folder: Path) -> list[str]:
    """The modules replaced by stand-ins (see the module docstring)."""
    return (folder / "missing.txt").read_text().split()


def common_tests_package():
    """Import `hf_common_tests.test_modeling_common` and `.test_configuration_common` from the fetched sdist."""
    folder = fetch()
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    modeling = importlib.import_module(f"{PACKAGE}.test_modeling_common")
    configuration = importlib.import_module(f"{PACKAGE}.test_configuration_common")
    return folder, modeling, configuration


if __name__ == "__main__":
    where = fetch()
    print(f"transformers {installed_version()} common tests in {where / PACKAGE}; stand-ins for what the sdist lacks: "
          f"{', '.join(missing_from_sdist(where)) or 'none'}")
