"""dlcourse.machinery.lab: JupyterLab on the learner's copies, notebooks/ read-only; end to end on
a clone."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest
from tornado import web

from dlcourse.exercises import student
from dlcourse.machinery import lab, workspace

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- the contents manager


@pytest.fixture
def manager(tmp_path: Path) -> lab.CourseContentsManager:
    for folder in ("notebooks", "work"):
        (tmp_path / folder).mkdir()
        nbformat.write(nbformat.v4.new_notebook(), tmp_path / folder / "00_x.ipynb")
    return lab.CourseContentsManager(
        root_dir=str(tmp_path), solutions_dir=str(tmp_path / "notebooks")
    )


def _model(source: str) -> dict:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    return {"type": "notebook", "format": "json", "content": nb}


def test_solution_notebooks_are_read_only_and_the_learners_are_not(
    manager: lab.CourseContentsManager,
) -> None:
    get = manager.get
    assert asyncio.run(get("notebooks/00_x.ipynb", content=False))["writable"] is False
    assert asyncio.run(get("notebooks", content=False))["writable"] is False
    assert asyncio.run(get("work/00_x.ipynb", content=False))["writable"] is True
    saved = asyncio.run(manager.save(_model("x = 1"), "work/00_x.ipynb"))
    assert saved["path"] == "work/00_x.ipynb"


def test_a_solution_opened_by_mistake_shows_the_learners_copy_and_takes_no_typing(
    manager: lab.CourseContentsManager,
) -> None:
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# x"),
                                        nbformat.v4.new_code_cell("y = 1")]),
        Path(manager.root_dir) / "notebooks" / "00_x.ipynb",
    )  # fmt: skip
    stored = (Path(manager.root_dir) / "notebooks" / "00_x.ipynb").read_bytes()
    nb = asyncio.run(manager.get("notebooks/00_x.ipynb"))["content"]
    banner, *cells = nb.cells
    assert (
        banner.cell_type == "markdown" and "[work/00_x.ipynb](../work/00_x.ipynb)" in banner.source
    )
    assert "solution notebook `notebooks/00_x.ipynb`: read-only" in banner.source
    assert [c.source for c in cells] == ["# x", "y = 1"]
    assert all(c.metadata.editable is False and c.metadata.deletable is False for c in nb.cells)
    assert cells[1].metadata.trusted is True  # the course's own outputs: no "not trusted"
    mine = asyncio.run(manager.get("work/00_x.ipynb"))["content"]
    assert not any("editable" in c.metadata for c in mine.cells)  # the learner's copy: as it is
    # File > Save Notebook As... into work/: a plain copy, without the banner and the locks
    model = {"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(nb))}
    asyncio.run(manager.save(model, "work/mine.ipynb"))
    saved = nbformat.read(Path(manager.root_dir) / "work" / "mine.ipynb", as_version=4)
    assert [c.source for c in saved.cells] == ["# x", "y = 1"]
    assert not any({"editable", "deletable"} & set(c.metadata) for c in saved.cells)
    assert "dlcourse" not in saved.metadata
    assert (Path(manager.root_dir) / "notebooks" / "00_x.ipynb").read_bytes() == stored


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.save(_model("x = 1"), "notebooks/00_x.ipynb"),  # JupyterLab's autosave
        lambda m: m.save(_model("x = 1"), "notebooks/new.ipynb"),  # a new file there
        lambda m: m.delete_file("notebooks/00_x.ipynb"),
        lambda m: m.rename_file("notebooks/00_x.ipynb", "work/y.ipynb"),
        lambda m: m.rename_file("work/00_x.ipynb", "notebooks/00_x.ipynb"),
    ],
    ids=["save", "new file", "delete", "rename out", "rename in"],
)
def test_every_change_under_notebooks_is_refused_with_the_way_out(
    manager: lab.CourseContentsManager, change
) -> None:
    solutions = Path(manager.solutions_dir)
    before = {p.name: p.read_bytes() for p in solutions.iterdir()}
    with pytest.raises(web.HTTPError) as info:
        asyncio.run(change(manager))
    assert info.value.status_code == 403
    message = info.value.log_message
    assert "solution notebooks" in message and "work/" in message
    assert "make lab-solutions" in message
    assert {p.name: p.read_bytes() for p in solutions.iterdir()} == before
    assert (Path(manager.root_dir) / "work" / "00_x.ipynb").exists()


def test_the_course_config_comes_first_and_keeps_the_learners() -> None:
    env = lab.lab_environment({"JUPYTER_CONFIG_PATH": "/mine"})
    assert env["JUPYTER_CONFIG_PATH"].split(os.pathsep) == [str(lab.CONFIG_DIR), "/mine"]
    overrides = lab.CONFIG_DIR / "labconfig" / "default_setting_overrides.json"
    settings = json.loads(overrides.read_text(encoding="utf-8"))
    assert settings["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"


def test_the_terminals_find_the_course_environment(tmp_path: Path) -> None:
    """JupyterLab's terminals get this environment's scripts first on PATH, and a shell that
    keeps it: `dlcourse doctor` works there, as notebook 00 says."""
    env = lab.lab_environment({"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    scripts = str(Path(sys.executable).parent)
    assert env["PATH"].split(os.pathsep) == [scripts, "/usr/bin", "/bin"]
    assert shutil.which("dlcourse", path=env["PATH"]) == str(Path(scripts) / "dlcourse")
    shell = lab.terminal_shell({"SHELL": "/bin/sh"})
    assert shell == ["/bin/sh"]  # named: not a login shell, whose /etc/profile resets PATH
    found = subprocess.run(
        [*shell, "-i", "-c", "command -v dlcourse"], env=env, cwd=tmp_path,
        capture_output=True, text=True, stdin=subprocess.DEVNULL, check=True,
    ).stdout.strip()  # fmt: skip
    assert found == str(Path(scripts) / "dlcourse")
    command = lab.lab_command(tmp_path / "work" / "x.ipynb", course_dir=tmp_path)
    assert f"--ServerApp.terminado_settings=shell_command={lab.terminal_shell()!r}" in command


def test_lab_command_starts_at_the_given_notebook(tmp_path: Path) -> None:
    start = tmp_path / "work" / "01_x.ipynb"
    start.parent.mkdir()
    learner = lab.lab_command(start, extra=["--no-browser"], course_dir=tmp_path)
    assert learner[:4] == [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={tmp_path}"]
    assert learner[-2:] == ["--no-browser", "work/01_x.ipynb"]
    assert any(a.endswith("=dlcourse.machinery.lab.CourseContentsManager") for a in learner)
    # every way in: the printed URL and "/" land on the notebook, the file browser in work/
    assert "--LabApp.default_url=/lab/tree/work/01_x.ipynb" in learner
    assert "--ContentsManager.preferred_dir=work" in learner
    author = lab.lab_command(tmp_path / "notebooks" / "00_x.ipynb", solutions=True,
                             course_dir=tmp_path)  # fmt: skip
    assert author[-1] == "notebooks/00_x.ipynb"
    assert not any("contents_manager_class" in a for a in author)


# --------------------------------------------------------------------------- end to end


def _fresh_clone(target: Path) -> Path:
    """The course as a newcomer's ``git clone`` has it: this checkout's tracked and new files
    (not what .gitignore keeps out: no .venv, no work/), committed in a new repository."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=target, check=True)
    subprocess.run([*git, "add", "-A"], cwd=target, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "clone"], cwd=target, check=True)
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """A running ``dlcourse lab``, spoken to as JupyterLab's front end speaks to it."""

    def __init__(self, port: int, token: str) -> None:
        self.base, self.token = f"http://127.0.0.1:{port}", token

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.base}{path}", data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def wait_until_up(self, proc: subprocess.Popen, log: Path, seconds: float = 90) -> None:
        """Until the server answers; fails with its log if its process ends first."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                if self.request("GET", "/api/status")[0] == 200:
                    return
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"JupyterLab did not start in {seconds:.0f} s"
            time.sleep(0.3)

    def run_cells(self, kernel_id: str, sources: list[str]) -> list[str]:
        """Execute each source in the kernel, in order; return each one's output as text."""
        import websocket

        url = f"{self.base.replace('http', 'ws')}/api/kernels/{kernel_id}/channels"
        ws = websocket.create_connection(f"{url}?token={self.token}", timeout=120)
        session, texts = uuid.uuid4().hex, []
        try:
            for code in sources:
                msg_id = uuid.uuid4().hex
                header = {"msg_id": msg_id, "msg_type": "execute_request", "session": session,
                          "username": "learner", "version": "5.3", "date": ""}  # fmt: skip
                ws.send(json.dumps({
                    "header": header, "parent_header": {}, "metadata": {}, "channel": "shell",
                    "content": {"code": code, "silent": False, "store_history": True,
                                "user_expressions": {}, "allow_stdin": False},
                }))  # fmt: skip
                text, idle, replied = [], False, False
                while not (idle and replied):
                    msg = json.loads(ws.recv())
                    if msg.get("parent_header", {}).get("msg_id") != msg_id:
                        continue
                    kind, content = msg["header"]["msg_type"], msg["content"]
                    if kind == "stream":
                        text.append(content["text"])
                    elif kind in ("display_data", "execute_result"):
                        text.append(content["data"].get("text/plain", ""))
                    elif kind == "error":
                        text.append(f"ERROR {content['ename']}: {content['evalue']}")
                    idle |= kind == "status" and content["execution_state"] == "idle"
                    replied |= kind == "execute_reply"
                texts.append("".join(text))
        finally:
            ws.close()
        return texts


def _terminal_says(server: _Server, line: str, expect: str) -> str:
    """Type ``line`` into a new JupyterLab terminal; return what it shows once ``expect`` is
    in it (or after 30 s)."""
    import websocket

    status, terminal = server.request("POST", "/api/terminals")
    assert status == 200, terminal
    url = f"{server.base.replace('http', 'ws')}/terminals/websocket/{terminal['name']}"
    ws = websocket.create_connection(f"{url}?token={server.token}", timeout=30)
    shown, deadline = "", time.monotonic() + 30
    try:
        ws.send(json.dumps(["stdin", f"{line}\r"]))
        while expect not in shown and time.monotonic() < deadline:
            message = json.loads(ws.recv())
            if message[0] == "stdout":
                shown += message[1]
    except websocket.WebSocketTimeoutException:
        pass
    finally:
        ws.close()
        server.request("DELETE", f"/api/terminals/{terminal['name']}")
    return shown


@pytest.mark.slow
def test_a_learner_works_through_a_notebook_and_git_sees_no_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a fresh clone in a folder named dlcourse: `dlcourse lab` (what `make lab` runs) opens
    the learner's copies; solving the exercises, running every cell and saving, in JupyterLab,
    records the learner's progress and leaves every tracked file as it was."""
    clone = _fresh_clone(tmp_path / "dlcourse")
    port, token = _free_port(), uuid.uuid4().hex
    jupyter = tmp_path / "jupyter"  # the learner's Jupyter settings and runtime files
    env = {
        **os.environ,
        "PYTHONPATH": str(clone),  # the clone's package, for the server and its kernels
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "JUPYTER_DATA_DIR": str(jupyter / "data"),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "IPYTHONDIR": str(jupyter / "ipython"),
    }
    env.pop("DLCOURSE_PROGRESS", None)  # the learner's own setting: none
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlcourse", "lab", "--no-browser", f"--port={port}",
         f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    server = _Server(port, token)
    try:
        server.wait_until_up(proc, tmp_path / "lab.log")
        launched = (tmp_path / "lab.log").read_text()
        assert "Your notebooks are in work/" in launched
        assert "new copies: 00, 01, 02, 03" in launched

        # every way in lands on the learner's copy: the URL printed, the server's "/", and the
        # file browser (in work/, not at the course root beside notebooks/)
        assert f":{port}/lab/tree/work/00_welcome.ipynb?token=" in launched
        landing = urllib.request.Request(f"{server.base}/?token={token}")
        with urllib.request.urlopen(landing, timeout=30) as response:
            assert response.geturl().split("?")[0].endswith("/lab/tree/work/00_welcome.ipynb")
            assert '"preferredPath": "work"' in response.read().decode()

        # a second `dlcourse lab` opens this one (no second server on port 8889)
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", env["JUPYTER_RUNTIME_DIR"])
        assert lab.running_lab(clone)["port"] == port
        again = subprocess.run(
            [sys.executable, "-m", "dlcourse", "lab", "--no-browser"], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert "already runs for this course" in again.stdout
        assert f":{port}/lab/tree/work/00_welcome.ipynb?token={token}" in again.stdout

        # `dlcourse` in JupyterLab's terminal: the course's environment is on its PATH
        said = _terminal_says(server, "command -v dlcourse", "bin/dlcourse")
        assert str(Path(sys.executable).parent / "dlcourse") in said, said

        # what the learner sees: their copies, writable; the solutions, read-only; no news pop-up
        status, listing = server.request("GET", "/api/contents/work")
        names = {item["name"] for item in listing["content"]}
        assert status == 200 and {"00_welcome.ipynb", "03_optimizers.ipynb"} <= names
        path = "work/00_welcome.ipynb"
        assert server.request("GET", f"/api/contents/{path}?content=0")[1]["writable"] is True
        solution = "notebooks/00_welcome.ipynb"
        assert server.request("GET", f"/api/contents/{solution}?content=0")[1]["writable"] is False
        notification = "/lab/api/settings/@jupyterlab/apputils-extension:notification"
        schema = server.request("GET", notification)[1]["schema"]  # defaults, overrides applied
        assert schema["properties"]["fetchNews"]["default"] == "false"

        # the learner writes each answer into their copy and runs every cell, in order
        mine = nbformat.reads(json.dumps(server.request("GET", f"/api/contents/{path}")[1]
                                         ["content"]), as_version=4)  # fmt: skip
        answers = nbformat.read(clone / solution, as_version=4)
        assert any(student.STUB in c.source for c in mine.cells)
        banner = server.request("GET", f"/api/contents/{solution}")[1]["content"]["cells"][0]
        assert "Your own copy is **[work/00_welcome.ipynb]" in "".join(banner["source"])
        logged = (tmp_path / "lab.log").read_text()
        assert "is not trusted" not in logged  # the copy signed when written, the solution ours
        for cell, answer in zip(mine.cells, answers.cells, strict=True):
            if cell.cell_type == "code" and student.STUB in cell.source:
                cell.source = answer.source
        status, session = server.request("POST", "/api/sessions", {
            "path": path, "name": "00_welcome.ipynb", "type": "notebook",
            "kernel": {"name": "python3"},
        })  # fmt: skip
        assert status == 201, session
        code = [c for c in mine.cells if c.cell_type == "code"]
        outputs = server.run_cells(session["kernel"]["id"], [c.source for c in code])
        for cell, text in zip(code, outputs, strict=True):
            assert "ERROR" not in text, (cell.source, text)
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        checks = [t for c, t in zip(code, outputs, strict=True) if ".check(" in c.source]
        assert sum("[PASSED]" in t for t in checks) == 2, checks

        # JupyterLab saves the copy (autosave does the same) and refuses to save a solution
        body = {"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(mine))}
        assert server.request("PUT", f"/api/contents/{path}", body)[0] == 200
        status, refused = server.request("PUT", f"/api/contents/{solution}", body)
        assert status == 403 and "Your own copy is work/00_welcome.ipynb" in refused["message"]

        # `dlcourse reset 00` now would be undone by the tab's next save: it says so
        open_in = workspace.open_sessions(clone / path)
        assert len(open_in) == 1 and f":{port}/" in open_in[0] and "python3" in open_in[0]
        told = workspace.describe_reset(clone / path, None, root=clone)
        assert "work/00_welcome.ipynb is open in JupyterLab" in told
        assert "File > Reload Notebook from Disk" in told and "Revert" in told
        server.request("DELETE", f"/api/sessions/{session['id']}")
        assert workspace.open_sessions(clone / path) == []
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()

    saved = nbformat.read(clone / path, as_version=4)
    assert any("[PASSED] pairwise_sq_dists" in str(c.get("outputs")) for c in saved.cells)
    recorded = json.loads((clone / "work" / ".progress.json").read_text(encoding="utf-8"))
    passed = recorded["exercises"]["00"]
    assert {name for name, e in passed.items() if e["first_passed"]} == {
        "pairwise_sq_dists",
        "mse_gradient",
    }
    report = subprocess.run(
        [sys.executable, "-m", "dlcourse", "progress"], cwd=tmp_path, env=env,
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "00 Welcome: why deep learning works now; tensors, autograd, devices: 2/2" in report
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone,
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert status == "", f"working through the notebook changed what git tracks:\n{status}"
