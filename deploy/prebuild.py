"""Zappa's ``prebuild_script``: build the lean deploy virtualenv and point Zappa at it.

Zappa zips whichever virtualenv is active, and the development one holds moto,
Playwright, pytest and Zappa's own dependencies. Before every ``zappa package``,
``deploy`` and ``update`` Zappa calls ``lean_venv()``, which

1. builds ``.venv-deploy`` from requirements.txt alone, plus the four modules of Zappa
   its Lambda handler imports, as Linux x86_64 wheels for Lambda's Python whatever the
   machine (rebuilt only when requirements.txt or this file change);
2. drops what the tracker never loads: Babel's locale data beyond its four languages,
   the holidays of every country but Azerbaijan, scripts;
3. compiles the gettext catalogs (the .mo files are not in git);
4. sets ``VIRTUAL_ENV`` to ``.venv-deploy``, so the zip Zappa builds next is the lean one.

Standalone on purpose: Zappa loads this file by its path, outside any package.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-deploy"
STAMP = VENV / ".built-from"

# Lambda's runtime (zappa_settings.json: "runtime": "python3.11", x86_64).
PYTHON_VERSION = "3.11"
PLATFORM = "manylinux2014_x86_64"

# The Babel locales the app formats dates in, with the parents Babel loads under them:
# en, zh (as zh_Hans_CN), az, ru, and en_US for Babel's default locale (LANG on Lambda).
BABEL_LOCALES = frozenset({
    "root", "en", "en_US", "zh", "zh_Hans", "zh_Hans_CN", "az", "ru"})
# holidays: only Azerbaijan, in its own language and the English the package ships.
HOLIDAY_COUNTRIES = {"azerbaijan": "Azerbaijan, AZ, AZE"}
HOLIDAY_LANGUAGES = frozenset({"az", "en_US"})
# What the handler Zappa copies into the zip imports (zappa.handler → asgi, middleware,
# utilities, wsgi; utilities imports durationpy). Not its CLI and its dependencies.
HANDLER_DISTRIBUTIONS = ("zappa", "durationpy")


def site_packages(venv: Path = VENV) -> Path:
    """Where Zappa looks for the venv's packages (it uses the running Python's version)."""
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
        "site-packages"


def fingerprint() -> str:
    """What the deploy venv is built from: requirements, this recipe, Zappa's version."""
    digest = hashlib.sha256()
    digest.update((ROOT / "requirements.txt").read_bytes())
    digest.update(Path(__file__).read_bytes())
    for name in HANDLER_DISTRIBUTIONS:
        digest.update(f"{name}=={metadata.version(name)}".encode())
    return digest.hexdigest()


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--target", str(site_packages()), "--platform", PLATFORM,
         "--implementation", "cp", "--python-version", PYTHON_VERSION,
         "--only-binary=:all:", *args], check=True)


def build_venv() -> bool:
    """Build .venv-deploy unless it is current; True when it was (re)built."""
    wanted = fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return False
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(VENV)], check=True)
    site_packages().mkdir(parents=True, exist_ok=True)
    _pip("-r", str(ROOT / "requirements.txt"))
    shutil.rmtree(site_packages() / "bin", ignore_errors=True)  # console scripts
    _pip("--no-deps", *(f"{n}=={metadata.version(n)}" for n in HANDLER_DISTRIBUTIONS))
    prune(site_packages())
    STAMP.write_text(wanted)
    return True


def prune(packages: Path) -> None:
    """Remove what the tracker never loads from an installed site-packages."""
    shutil.rmtree(packages / "bin", ignore_errors=True)  # console scripts
    for data in (packages / "babel" / "locale-data").glob("*.dat"):
        if data.stem not in BABEL_LOCALES:
            data.unlink()
    countries = packages / "holidays" / "countries"
    for module in countries.glob("*.py"):
        if module.stem not in HOLIDAY_COUNTRIES and module.name != "__init__.py":
            module.unlink()
    # The package's __init__ imports all 250 countries; ours imports the one we keep,
    # which is also what `holidays.country_holidays("AZ")` loads.
    (countries / "__init__.py").write_text("".join(
        f"from holidays.countries.{module} import {names}  # noqa: F401\n"
        for module, names in HOLIDAY_COUNTRIES.items()))
    for language in (packages / "holidays" / "locale").iterdir():
        if language.name not in HOLIDAY_LANGUAGES:
            shutil.rmtree(language)


def compile_catalogs() -> list[Path]:
    """Compile every catalog whose .mo is missing or older (``make translations``)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    compiled = []
    for po in sorted(ROOT.glob("translations/*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as source:
            catalog = read_po(source)
        with mo.open("wb") as target:
            write_mo(target, catalog, use_fuzzy=True)
        compiled.append(mo)
    return compiled


def lean_venv() -> None:
    """Zappa's prebuild_script: make the lean venv current and the one Zappa zips."""
    rebuilt = build_venv()
    compile_catalogs()
    os.environ["VIRTUAL_ENV"] = str(VENV)
    print(f"prebuild: packaging {VENV.name} ({'rebuilt' if rebuilt else 'current'})",
          file=sys.stderr)
