"""The heuristics, one snippet at a time: what is an ID site, what is not, and which of
them the fixer may rewrite (docs/decisions/0010-audit-heuristics.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.migrate.audit.audit_support import audit_snippet, kinds_by_line, write_tree

from threadwire.migrate.audit import audit_tree, load_config

# (source, expected (line, kind) pairs) -- each row one rule.
SITES = [
    # f-string run ID with a UUID slice: the textbook legacy generator.
    (
        'import uuid\ndef f(thread_id):\n    return f"run_{thread_id}_{uuid.uuid4().hex[:8]}"\n',
        [(3, "adhoc_build")],
    ),
    # %-formatting into an ID name, with a timestamp.
    (
        'import time\ndef f(t):\n    run_id = "%s-%d" % (t, time.time())\n    return run_id\n',
        [(3, "adhoc_build")],
    ),
    # str.format with the canonical-looking shape.
    (
        "import secrets\ndef f(tid):\n"
        '    return "thread_{}_run_{}".format(tid, secrets.token_hex(4))\n',
        [(3, "adhoc_build")],
    ),
    # join of literal pieces.
    (
        "import uuid\ndef f(thread_id):\n"
        '    return "_".join(["run", thread_id, uuid.uuid4().hex[:8]])\n',
        [(3, "adhoc_build")],
    ),
    # + chain into an attribute that holds an ID: one finding for the whole chain.
    (
        'def f(self, user):\n    self.thread_id = "t-" + user + "-" + str(id(self))\n',
        [(2, "adhoc_build")],
    ),
    # a local flows into an ID key later: the build is still an ID build.
    (
        'import uuid\ndef f(t):\n    rid = f"{t}:{uuid.uuid4().hex}"\n    return {"run_id": rid}\n',
        [(3, "adhoc_build")],
    ),
    # split, rsplit, partition, slicing, startswith, removeprefix on ID names.
    ('def f(run_id):\n    return run_id.split("_")[1]\n', [(2, "adhoc_parse")]),
    ('def f(ctx):\n    return ctx.run_id.rsplit("_", 1)[0]\n', [(2, "adhoc_parse")]),
    ('def f(event):\n    return event["thread_id"].partition(":")[0]\n', [(2, "adhoc_parse")]),
    ("def f(run_id):\n    return run_id[4:-9]\n", [(2, "adhoc_parse")]),
    ('def f(run_id):\n    return run_id.startswith("run_")\n', [(2, "adhoc_parse")]),
    ('def f(msg):\n    return msg.get("run_id").removeprefix("run_")\n', [(2, "adhoc_parse")]),
    # data flow inside a function: a local assigned from an ID name.
    (
        'def f(event):\n    rid = event["run_id"]\n    other = rid\n    return other.split("_")\n',
        [(4, "adhoc_parse")],
    ),
    # loops over collections of IDs.
    ('def f(run_ids):\n    return [r.split("_")[1] for r in run_ids]\n', [(2, "adhoc_parse")]),
    # JSON and HTTP spellings of the key.
    (
        'def f(msg, headers):\n    a = msg["runId"].split("_")\n    b = headers["X-Run-Id"][4:]\n',
        [(2, "adhoc_parse"), (3, "adhoc_parse")],
    ),
    # regular expressions, module-level compiled or re.* directly.
    (
        'import re\nRX = re.compile("x")\ndef f(run_id):\n    return RX.match(run_id)\n',
        [(4, "adhoc_parse")],
    ),
    (
        'import re\ndef f(run_id):\n    return re.search(r"_(\\d+)_", run_id)\n',
        [(3, "adhoc_parse")],
    ),
]

DECOYS = [
    "import subprocess\ndef run_tests(p):\n    return subprocess.run(['pytest', p], check=False)\n",
    "from concurrent.futures import ThreadPoolExecutor\nthread_pool = ThreadPoolExecutor(2)\n",
    "def f(line):\n    return line.split(',')\n",
    "def f(i):\n    return f'run_{i}'\n",
    "import threading\ndef f(i):\n    return threading.Thread(name=f'thread_{i}')\n",
    "import uuid\ndef f():\n    return f'run_{uuid.uuid4().hex}.log'\n",
    "import uuid\ndef f(user):\n    return f'cache:{user}:{uuid.uuid4().hex}'\n",
    "import uuid\nnonce = uuid.uuid4().hex\n",
    "def f(run_id, thread_id):\n    return f'run {run_id} finished in {thread_id}'\n",
    "def f(run_id):\n    return f'run_id={run_id}'\n",
    "def f(run_id):\n    return 'Run: ' + run_id\n",
    "def f(run_id, seen):\n    return run_id in seen and len(run_id) > 3\n",
    "def f(run_name):\n    return run_name.split(' ')[0]\n",
    "def f(runs):\n    return 'runs: %d' % len(runs)\n",
    "def f(run_id):\n    return {'run_id': run_id, 'kind': 'start'}\n",
    "import re\ndef f(text):\n    return re.match(r'run_(.+)', text)\n",
    "def f(thread_name):\n    return thread_name.split('-')\n",
    "def f(run_id):\n    key = f'runs:{run_id}'\n    return key\n",
]


@pytest.mark.parametrize(("source", "expected"), SITES)
def test_id_sites_are_found_at_their_line(
    tmp_path: Path, source: str, expected: list[tuple[int, str]]
) -> None:
    assert kinds_by_line(audit_snippet(tmp_path, source)) == expected


@pytest.mark.parametrize("source", DECOYS)
def test_code_that_only_mentions_runs_and_threads_is_not_flagged(
    tmp_path: Path, source: str
) -> None:
    assert audit_snippet(tmp_path, source) == []


def test_column_is_zero_based_at_the_expression_start(tmp_path: Path) -> None:
    source = "def f(run_id):\n    x = (run_id.split('_'))\n"
    (finding,) = audit_snippet(tmp_path, source)
    assert (finding.line, finding.column) == (2, 9)


def test_multi_line_expression_reports_its_first_line(tmp_path: Path) -> None:
    source = (
        "import uuid\ndef f(thread_id):\n    return '_'.join([\n        'run',\n"
        "        thread_id,\n        uuid.uuid4().hex[:8],\n    ])\n"
    )
    assert kinds_by_line(audit_snippet(tmp_path, source)) == [(3, "adhoc_build")]


def test_configured_id_names_are_added_to_the_defaults(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "pyproject.toml": '[tool.threadwire.audit]\nid_names = ["conv_key"]\n',
            "m.py": "def f(conv_key, run_id, other):\n    a = conv_key[:4]\n"
            "    b = run_id[:4]\n    return other[:4]\n",
        },
    )
    findings = audit_tree(tmp_path, load_config(tmp_path)).result.findings
    assert [(f.line, f.column) for f in findings] == [(2, 8), (3, 8)]


def test_two_sites_of_one_kind_on_one_line_are_one_finding(tmp_path: Path) -> None:
    source = "def f(run_id):\n    return run_id[4 : run_id.rindex('_')]\n"
    assert kinds_by_line(audit_snippet(tmp_path, source)) == [(2, "adhoc_parse")]


def test_legacy_imports_and_calls_through_aliases_and_relative_imports(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/id_manager.py": "def make(t):\n    return t\n",
            "pkg/a.py": "import pkg.id_manager as idm\nx = idm.make('t')\n",
            "pkg/b.py": "from . import id_manager\nx = id_manager.make('t')\n",
            "pkg/c.py": "from .id_manager import make as m\nx = m('t')\n",
            "pkg/d.py": "id_manager = object()\nx = id_manager.__class__()\n",
        },
    )
    found = audit_tree(tmp_path, load_config(tmp_path)).result
    rows = [(f.path, f.line, str(f.kind)) for f in found.findings]
    assert rows == [
        ("pkg/a.py", 1, "legacy_import"),
        ("pkg/a.py", 2, "legacy_call"),
        ("pkg/b.py", 1, "legacy_import"),
        ("pkg/b.py", 2, "legacy_call"),
        ("pkg/c.py", 1, "legacy_import"),
        ("pkg/c.py", 2, "legacy_call"),
    ]
    assert found.files_scanned == 5  # the legacy module itself is not audited


def test_configured_legacy_module_and_objects_made_from_it(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "pyproject.toml": '[tool.threadwire.audit]\nlegacy_modules = ["acme.idgen"]\n',
            "acme/__init__.py": "",
            "acme/idgen.py": "class Gen:\n    def next(self, t):\n        return t\n",
            "acme/agent.py": (
                "from acme.idgen import Gen\n\nclass A:\n    def __init__(self):\n"
                "        self.gen = Gen()\n\n    def go(self, t):\n"
                "        return self.gen.next(t)\n"
            ),
        },
    )
    found = audit_tree(tmp_path, load_config(tmp_path)).result.findings
    assert [(f.line, str(f.kind)) for f in found] == [
        (1, "legacy_import"),
        (5, "legacy_call"),
        (8, "legacy_call"),
    ]


def test_a_file_that_does_not_parse_is_reported_and_the_rest_still_audited(
    tmp_path: Path,
) -> None:
    write_tree(
        tmp_path,
        {
            "bad.py": "def f(:\n    pass\n",
            "good.py": "def f(run_id):\n    return run_id[:4]\n",
        },
    )
    found = audit_tree(tmp_path, load_config(tmp_path)).result
    assert [(f.path, str(f.kind)) for f in found.findings] == [
        ("bad.py", "parse_error"),
        ("good.py", "adhoc_parse"),
    ]
    assert found.files_scanned == 2


def test_gitignored_and_excluded_files_are_not_audited(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            ".gitignore": "build/\n*_gen.py\n",
            "pyproject.toml": '[tool.threadwire.audit]\nexclude = ["vendor/"]\n',
            "build/x.py": "def f(run_id):\n    return run_id[:4]\n",
            "routes_gen.py": "def f(run_id):\n    return run_id[:4]\n",
            "vendor/y.py": "def f(run_id):\n    return run_id[:4]\n",
            "sub/.gitignore": "local.py\n",
            "sub/local.py": "def f(run_id):\n    return run_id[:4]\n",
            "app.py": "def f(run_id):\n    return run_id[:4]\n",
        },
    )
    found = audit_tree(tmp_path, load_config(tmp_path)).result
    assert [f.path for f in found.findings] == ["app.py"]
    assert found.files_scanned == 1


def test_legacy_names_re_exported_by_a_package_and_injected_objects(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "svc/__init__.py": "",
            "svc/ids/__init__.py": "from .run_id_generator import Gen\n",
            "svc/ids/run_id_generator.py": "class Gen:\n    def make(self, t):\n        return t\n",
            "svc/agent.py": (
                "from svc.ids import Gen\n\n\nclass Agent:\n"
                "    def __init__(self, gen: Gen):\n        self.gen = gen\n\n"
                "    def start(self, t):\n        return self.gen.make(t)\n"
            ),
        },
    )
    found = audit_tree(tmp_path, load_config(tmp_path)).result.findings
    assert [(f.path, f.line, str(f.kind)) for f in found] == [
        ("svc/agent.py", 1, "legacy_import"),
        ("svc/agent.py", 9, "legacy_call"),
        ("svc/ids/__init__.py", 1, "legacy_import"),
    ]


@pytest.mark.parametrize(
    ("generator", "fixable"),
    [
        # run_{thread}_{ms}_{rand8} reads as legacy_run with thread "t_123" in threadwire.ids.
        ('f"run_{thread_id}_{int(time.time() * 1000)}_{uuid.uuid4().hex[:8]}"', False),
        ('f"thread_{thread_id}_run_{int(time.time() * 1000)}_{uuid.uuid4().hex[:8]}"', True),
    ],
)
def test_extractors_stay_while_code_makes_ids_with_a_timestamp_after_the_thread(
    tmp_path: Path, generator: str, fixable: bool
) -> None:
    write_tree(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/id_manager.py": (
                f"import time\nimport uuid\n\n\ndef new_run(thread_id):\n    return {generator}\n"
            ),
            "app/router.py": "def route(run_id):\n    thread_id = run_id.split('_')[1]\n",
        },
    )
    (finding,) = audit_tree(tmp_path, load_config(tmp_path)).result.findings
    assert finding.fixable is fixable


def test_an_id_cut_short_for_a_message_is_not_a_parse(tmp_path: Path) -> None:
    source = (
        "import logging\nlog = logging.getLogger()\n"
        "def f(run_id):\n"
        "    log.warning('bad run %s', run_id[:80])\n"
        "    msg = f'run {run_id[:80]!r} failed'\n"
        "    return 'run %s' % (run_id[:8],), run_id[:8]\n"
    )
    assert kinds_by_line(audit_snippet(tmp_path, source)) == [(6, "adhoc_parse")]


def test_threadwire_ids_itself_is_not_audited(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "threadwire/__init__.py": "",
            "threadwire/ids/__init__.py": "",
            "threadwire/ids/generate.py": "def new_run_id(thread_id, ms, rand):\n"
            "    return f'thread_{thread_id}_run_{ms}_{rand}'\n",
        },
    )
    result = audit_tree(tmp_path, load_config(tmp_path)).result
    assert (result.findings, result.files_scanned) == ((), 1)
