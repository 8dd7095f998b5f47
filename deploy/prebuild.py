"""Zappa's ``prebuild_script``: package the committed tree and the lean deploy virtualenv.

Zappa zips the current folder with a deny-list and whichever virtualenv is active.
Before every ``zappa package``, ``deploy`` and ``update`` Zappa calls ``lean_venv()``,
which

1. refuses a ``deploy`` or ``update`` while the runtime files have uncommitted or
   untracked changes (``package`` only warns): what goes live is what is committed;
2. exports ``git archive HEAD`` of the runtime files alone (``RUNTIME_PATHS``) into a
   temporary folder and makes it the working directory Zappa zips, so nothing else of
   the working tree (a ``.env``, an editor folder, a scratch file) can ship;
3. builds ``.venv-deploy`` from requirements.txt alone, plus the four modules of Zappa
   its Lambda handler imports, as wheels for the runtime's Python and the
   ``architecture`` of zappa_settings.json whatever the machine (rebuilt only when
   requirements.txt, this file or those settings change), and drops what the tracker
   never loads: Babel's locale data beyond its four languages, the holidays of every
   country but Azerbaijan, the markets' calendars, scripts, ``NEVER_LOADED`` and the
   installers' RECORD files;
4. parses the TOML files the app reads (``parse_toml``), compiles the gettext
   catalogs, the Jinja templates to Python modules (shipped
   instead of the templates: bytecode for those the first page loads, so a cold start
   compiles none; Python source for the rest), and every module to bytecode with the
   runtime's own Python and ``unchecked-hash`` invalidation: Zappa stamps every zip
   entry 1980-01-01, so timestamp-checked .pyc files would be ignored, and /var/task
   never changes;
5. sets ``VIRTUAL_ENV`` to ``.venv-deploy``, so the zip Zappa builds next is the lean one.

Standalone on purpose: Zappa loads this file by its path, outside any package.
"""

from __future__ import annotations

import atexit
import functools
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-deploy"
STAMP = VENV / ".built-from"

# What of the repository Lambda runs; nothing else of it is packaged.
RUNTIME_PATHS = ("app.py", "handlers", "tracker", "operators", "templates", "static",
                 "translations")
# The local sandbox's own modules and pages: never loaded on Lambda, where LOCAL_MODE is
# always off (tracker/config.py), so never packaged.
SANDBOX_ONLY = ("tracker/local.py", "tracker/motoserver.py", "tracker/outbox.py",
                "templates/outbox.html", "templates/outbox_message.html")
# Files whose uncommitted changes would make a deploy differ from what its author sees.
WATCHED_PATHS = (*RUNTIME_PATHS, "requirements.txt", "zappa_settings.json", "deploy")


def _settings() -> dict:
    """The settings every stage shares (tests/test_package.py checks they agree)."""
    return json.loads((ROOT / "zappa_settings.json").read_text())["dev"]


# Lambda's runtime and architecture, from zappa_settings.json ("python3.13", "arm64").
PYTHON_VERSION = _settings()["runtime"].removeprefix("python")
ARCHITECTURE = _settings().get("architecture", "x86_64")
# manylinux 2.28 wheels run on Amazon Linux 2023 (glibc 2.34); 2014 for older projects.
PLATFORMS = tuple(f"manylinux{tag}_{'aarch64' if ARCHITECTURE == 'arm64' else 'x86_64'}"
                  for tag in ("_2_28", "2014"))

# The Babel locales the app formats dates in, with the parents Babel loads under them:
# en, zh (as zh_Hans_CN), az, ru, and en_US for Babel's default locale (LANG on Lambda).
BABEL_LOCALES = frozenset({
    "root", "en", "en_US", "zh", "zh_Hans", "zh_Hans_CN", "az", "ru"})
# holidays: only Azerbaijan, in its own language and the English the package ships.
HOLIDAY_COUNTRIES = {"azerbaijan": "Azerbaijan, AZ, AZE"}
HOLIDAY_LANGUAGES = frozenset({"az", "en_US"})
# The pages a cold start most often answers first: the form, and a page that is not
# there. The templates they load ship as bytecode (compile_templates).
FIRST_PAGES = ("/", "/no-such-page")
# What the handler Zappa copies into the zip imports (zappa.handler → asgi, middleware,
# utilities, wsgi; utilities imports durationpy). Not its CLI and its dependencies.
HANDLER_DISTRIBUTIONS = ("zappa", "durationpy")
# What no request of the tracker loads, and no later one needs (tests/test_package.py
# runs every kind of event the function gets and checks that none of it ships): Zappa's
# CLI and deploy code (its bytecode would ship without its source, which exclude_glob
# drops), Django glue and IAM templates; Werkzeug's debugger, demo app and reloader;
# Babel's catalog tools (the catalogs are compiled here); the holidays package's
# calendar exports; Windows-only modules.
NEVER_LOADED = ("zappa/cli.py", "zappa/core.py", "zappa/letsencrypt.py",
                "zappa/asynchronous.py", "zappa/ext", "zappa/policies",
                "werkzeug/debug", "werkzeug/testapp.py", "werkzeug/_reloader.py",
                "babel/messages", "holidays/ical.py", "holidays/generate_ics.py",
                "click/_winconsole.py", "babel/localtime/_win32.py", "dateutil/tz/win.py")
# Which files an installer leaves in each *.dist-info that nothing reads at run time
# (METADATA stays: importlib.metadata.version() reads it).
INSTALLER_RECORDS = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")


def site_packages(venv: Path = VENV) -> Path:
    """Where Zappa looks for the venv's packages (it uses the running Python's version)."""
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
        "site-packages"


def fingerprint() -> str:
    """What the deploy venv is built from: requirements, this recipe, Zappa's version."""
    digest = hashlib.sha256()
    digest.update((ROOT / "requirements.txt").read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(f"{PYTHON_VERSION} {ARCHITECTURE}".encode())
    for name in HANDLER_DISTRIBUTIONS:
        digest.update(f"{name}=={metadata.version(name)}".encode())
    return digest.hexdigest()


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--target", str(site_packages()),
         *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
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
    compile_bytecode(site_packages())
    STAMP.write_text(wanted)
    return True


@functools.cache
def runtime_python() -> str:
    """The runtime's own Python (``RUNTIME_PYTHON``, pyenv's, or on PATH); fails without."""
    name = f"python{PYTHON_VERSION}"
    pyenv = subprocess.run(["pyenv", "root"], capture_output=True, text=True) \
        if shutil.which("pyenv") else None
    found = [os.environ.get("RUNTIME_PYTHON"),
             *(sorted(glob.glob(f"{pyenv.stdout.strip()}/versions/{PYTHON_VERSION}.*/bin/"
                                f"{name}")) if pyenv and pyenv.returncode == 0 else []),
             shutil.which(name)]
    wanted = f"import sys; sys.exit('%d.%d' % sys.version_info[:2] != '{PYTHON_VERSION}')"
    for candidate in filter(None, found):
        # A pyenv shim exists whether or not it can run this version: ask it.
        if subprocess.run([candidate, "-c", wanted], capture_output=True).returncode == 0:
            return candidate
    raise SystemExit(f"prebuild: no {name} to compile bytecode for Lambda's runtime; "
                     f"install it (pyenv install {PYTHON_VERSION}) or set RUNTIME_PYTHON")


def compile_bytecode(folder: Path, *, extra: tuple[Path, Path] | None = None) -> None:
    """Compile every module under ``folder`` for the runtime, hash-stamped, unchecked.

    ``extra`` is one (source, pyc) pair compiled beside it: Zappa's handler.py, which
    Zappa copies to the zip's root after this step.
    """
    script = ("import compileall, py_compile, sys\n"
              "mode = py_compile.PycInvalidationMode.UNCHECKED_HASH\n"
              "ok = compileall.compile_dir(sys.argv[1], quiet=2, workers=0, "
              "invalidation_mode=mode)\n"
              "if len(sys.argv) > 2:\n"
              "    py_compile.compile(sys.argv[2], cfile=sys.argv[3], doraise=True, "
              "invalidation_mode=mode)\n"
              "sys.exit(0 if ok else 1)\n")
    args = [str(folder), *(map(str, extra) if extra else ())]
    subprocess.run([runtime_python(), "-c", script, *args], check=True)


def uncommitted(root: Path = ROOT) -> list[str]:
    """Changed or untracked (not ignored) files under the watched paths, as git lists them."""
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", *WATCHED_PATHS],
        cwd=root, capture_output=True, text=True, check=True)
    return [line[3:] for line in done.stdout.splitlines()]


def export_head(into: Path, root: Path = ROOT) -> Path:
    """The runtime files of the commit HEAD (``git archive``), less the sandbox's, in ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD", "--", *RUNTIME_PATHS],
                             cwd=root, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    for name in SANDBOX_ONLY:
        (into / name).unlink(missing_ok=True)
    return into


def compile_templates(folder: Path) -> list[str]:
    """Compile the app's Jinja templates to Python modules (app.py's COMPILED_TEMPLATES).

    With the deploy venv's Jinja under the runtime's Python, and the app's own Jinja
    environment (its extensions, its autoescaping), so the modules are what the app
    would compile on its first requests. Returns the templates a cold start's first
    answers load (``FIRST_PAGES``, rendered here with the test client, which reaches
    no AWS): those ship as bytecode, the others as Python source.
    """
    script = ("import app, json, sys\n"
              "app.app.jinja_env.compile_templates(sys.argv[1], zip=None, "
              "ignore_errors=False)\n"
              "client = app.app.test_client()\n"
              "for path in sys.argv[2:]:\n"
              "    client.get(path)\n"
              "print(json.dumps(sorted(key[1] for key in app.app.jinja_env.cache.keys())))\n")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{folder}:{site_packages()}",
           "SECRET_KEY": "build-only", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    done = subprocess.run([runtime_python(), "-S", "-B", "-c", script,
                           str(folder / "templates_compiled"), *FIRST_PAGES],
                          cwd=folder, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def zappa_handler_source() -> Path:
    """The handler.py Zappa copies to the zip's root (its own, beside its cli.py)."""
    import zappa.cli

    return Path(zappa.cli.__file__).resolve().parent / "handler.py"


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
    # The markets' calendars, loaded lazily by name like the countries: none is asked for.
    financial = packages / "holidays" / "financial"
    for module in financial.glob("*.py"):
        module.unlink()
    (financial / "__init__.py").write_text("")
    for name in NEVER_LOADED:
        path = packages / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    for name in INSTALLER_RECORDS:
        for record in packages.glob(f"*.dist-info/{name}"):
            record.unlink()


def compile_catalogs(root: Path = ROOT) -> list[Path]:
    """Compile every catalog whose .mo is missing or older (``make translations``)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    compiled = []
    for po in sorted(root.glob("translations/*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as source:
            catalog = read_po(source)
        with mo.open("wb") as target:
            write_mo(target, catalog, use_fuzzy=True)
        compiled.append(mo)
    return compiled


def clean_tree(command: str) -> Path:
    """Refuse to deploy uncommitted work; export HEAD's runtime files; return the folder."""
    changed = uncommitted()
    if changed and command in ("deploy", "update"):
        raise SystemExit("prebuild: refusing to deploy uncommitted or untracked files "
                         f"(commit or stash them first): {', '.join(changed[:10])}")
    if changed:
        print(f"prebuild: packaging HEAD; not in it: {', '.join(changed[:10])}",
              file=sys.stderr)
    folder = Path(tempfile.mkdtemp(prefix="esim-tracker-build-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    export_head(folder)
    compile_catalogs(folder)
    parse_toml(folder)
    first = compile_templates(folder)
    tag = f"cpython-{PYTHON_VERSION.replace('.', '')}"
    compile_bytecode(folder, extra=(zappa_handler_source(),
                                    folder / "__pycache__" / f"handler.{tag}.pyc"))
    ship_compiled_templates(folder / "templates_compiled", first, tag)
    # The app loads every template from templates_compiled (app.py): their Jinja
    # sources would only weigh on the zip.
    shutil.rmtree(folder / "templates")
    return folder


def parse_toml(folder: Path) -> None:
    """Parse every TOML file the app reads, beside it (``<file>.pickle``).

    The operators' files and the hand-kept working days: ``operators.read_toml`` loads
    the pickle, so a cold start imports no TOML parser and parses nothing (about 8 ms
    of CPU). Python's own pickle of plain data (str, int, list, dict, date), read back
    by the code that ships beside it.
    """
    import pickle
    import tomllib

    for path in sorted(folder.glob("**/*.toml")):
        with path.open("rb") as source:
            data = tomllib.load(source)
        path.with_name(path.name + ".pickle").write_bytes(pickle.dumps(data, protocol=4))


def ship_compiled_templates(compiled: Path, first: list[str], tag: str) -> None:
    """Bytecode alone for the templates of a cold start's first answers; source for the rest.

    A sourceless .pyc beside its module name is what the import system loads, unchecked.
    The rest stay Python: about a fifth of their bytecode's size in the zip, compiled by
    Python (no Jinja parsing) when a later request first needs them.
    """
    from jinja2.loaders import ModuleLoader

    eager = {ModuleLoader.get_module_filename(name).removesuffix(".py") for name in first}
    for pyc in (compiled / "__pycache__").glob(f"*.{tag}.pyc"):
        module = pyc.name.split(".")[0]
        if module in eager:
            pyc.rename(compiled / f"{module}.pyc")
            (compiled / f"{module}.py").unlink()
    shutil.rmtree(compiled / "__pycache__")


def lean_venv() -> None:
    """Zappa's prebuild_script: the clean tree and the lean venv are what Zappa zips."""
    command = next((a for a in sys.argv[1:] if a in ("deploy", "update", "package")), "")
    rebuilt = build_venv()
    folder = clean_tree(command)
    os.environ["VIRTUAL_ENV"] = str(VENV)
    # Zappa zips its working directory next (core.create_lambda_zip: Path.cwd()).
    os.chdir(folder)
    print(f"prebuild: packaging HEAD's runtime files and {VENV.name} "
          f"({'rebuilt' if rebuilt else 'current'})", file=sys.stderr)
