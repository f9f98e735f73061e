"""Fetching the benchmarks: pinned sources, checksums, mirrors, resumed downloads, and what happens offline."""

import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from common.config.errors import OptionError
from common.data.benchmarks import BENCHMARKS, TAGGED_BENCHMARK_FILES
from common.data.errors import DataError
from common.data.fetch import SOURCES, fetch, sha256_of

PINNED_URL = re.compile(r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/[\w./-]+")


def test_every_benchmark_is_pinned_to_a_commit_not_a_branch():
    assert set(SOURCES) == set(BENCHMARKS) | set(TAGGED_BENCHMARK_FILES) | {"zh_corpus"}
    for benchmark, source in SOURCES.items():
        for name, pinned in source.files.items():
            url = source.url(name)
            if benchmark == "zh_corpus":  # compiled here: from a mirror only
                assert url is None
                continue
            assert PINNED_URL.fullmatch(url), url
            assert re.fullmatch(r"[0-9a-f]{64}", pinned.sha256) and pinned.size > 0


@pytest.mark.needs_data(*SOURCES)
def test_the_checksums_are_those_of_the_data_the_figures_came_from(shared_data):
    for benchmark, source in SOURCES.items():
        for name, pinned in source.files.items():
            path = shared_data / benchmark / name
            assert path.stat().st_size == pinned.size and sha256_of(path) == pinned.sha256, path


def run_fetch(*flags, env=None, wait=True):
    command = [sys.executable, "-m", "common.data.fetch", *map(str, flags)]
    environment = {**os.environ, **(env or {})}
    if not wait:
        return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)


@pytest.mark.needs_data(*SOURCES)
def test_a_mirror_fills_an_empty_folder_and_a_rerun_finds_it_whole(tmp_path, shared_data):
    done = run_fetch("--data_dir", tmp_path / "data", "--mirror", shared_data)
    assert done.returncode == 0, done.stderr
    files = sum(len(source.files) for source in SOURCES.values())
    assert f"0 present, {files} fetched, 0 refused, 0 failed" in done.stdout
    for benchmark, source in SOURCES.items():
        for name in source.files:
            assert (tmp_path / "data" / benchmark / name).read_bytes() == (shared_data / benchmark / name).read_bytes()
    again = run_fetch("--data_dir", tmp_path / "data", "--benchmark", "sst2")  # no mirror needed: nothing to fetch
    assert again.returncode == 0 and "3 present, 0 fetched" in again.stdout


@pytest.mark.needs_data("ocnli")
def test_a_file_pinned_as_a_zip_member_comes_out_of_the_archive_checked(tmp_path, shared_data, monkeypatch):
    import zipfile

    from common.data import fetch as fetching

    archive = tmp_path / "ocnli_public.zip"  # the layout of CLUE's zip: the members at its top
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(shared_data / "ocnli" / "dev.json", "dev.json")
        zipped.writestr("train.50k.json", "{}\n")  # not the pinned bytes
    monkeypatch.setattr(fetching, "source_of", lambda benchmark, name, mirror: str(archive))
    rows = {name: (status, detail) for _, name, status, detail in fetch(tmp_path / "data", ["ocnli"])}
    assert rows["dev.json"] == ("fetched", str(archive))
    assert (tmp_path / "data/ocnli/dev.json").read_bytes() == (shared_data / "ocnli/dev.json").read_bytes()
    assert rows["train.50k.json"][0] == "refused" and not (tmp_path / "data/ocnli/train.50k.json").exists()
    assert not list((tmp_path / "data/ocnli").glob("*.partial"))  # the downloaded archive is not left behind


@pytest.mark.needs_data("sst2")
def test_a_file_whose_checksum_differs_is_refused_and_kept_aside(tmp_path, shared_data):
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_data / "sst2", mirror / "sst2")
    (mirror / "sst2" / "dev.tsv").write_bytes((shared_data / "sst2" / "dev.tsv").read_bytes().replace(b"\t1", b"\t0", 1))
    rows = {name: (status, detail) for _, name, status, detail in fetch(tmp_path / "data", ["sst2"], str(mirror))}
    assert rows["train.tsv"][0] == rows["test.tsv"][0] == "fetched"
    status, detail = rows["dev.tsv"]
    assert status == "refused" and SOURCES["sst2"].files["dev.tsv"].sha256 in detail
    assert sha256_of(mirror / "sst2" / "dev.tsv") in detail
    assert not (tmp_path / "data" / "sst2" / "dev.tsv").exists()  # never used
    found, pinned = sha256_of(mirror / "sst2" / "dev.tsv"), SOURCES["sst2"].files["dev.tsv"].sha256
    kept = tmp_path / "data" / ".rejected" / "sst2" / f"dev.tsv.sha256-{found[:16]}.pinned-{pinned[:16]}"
    assert kept.is_file() and str(kept) in detail  # named with both checksums, as the summary says
    assert run_fetch("--data_dir", tmp_path / "data", "--benchmark", "sst2", "--mirror", mirror).returncode == 2


def test_a_data_dir_that_is_a_file_is_named_as_such(tmp_path):
    (tmp_path / "data").write_text("not a folder")
    done = run_fetch("--data_dir", tmp_path / "data", "--benchmark", "sst2", "--mirror", tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == \
        f"error: --data_dir {tmp_path / 'data'}: a file, not a folder; give the folder the benchmarks go into"


class SlowMirror(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, honouring Range requests; `delay` seconds between 64 KB pieces."""

    delay = 0.0
    ranges: list = []

    def do_GET(self):
        path = self.translate_path(self.path)
        data = open(path, "rb").read()
        start = 0
        if self.headers.get("Range"):
            start = int(re.match(r"bytes=(\d+)-", self.headers["Range"]).group(1))
            type(self).ranges.append(start)
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        for offset in range(start, len(data), 65536):
            self.wfile.write(data[offset:offset + 65536])
            time.sleep(self.delay)

    def log_message(self, *args):
        pass


def serve(folder, delay):
    handler = type("Handler", (SlowMirror,), {"delay": delay, "ranges": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


@pytest.mark.needs_data("sst2")
def test_a_fetch_killed_mid_file_leaves_no_file_and_a_rerun_resumes_it(tmp_path, shared_data):
    slow, _ = serve(shared_data, delay=0.05)
    data = tmp_path / "data"
    process = run_fetch("--data_dir", data, "--benchmark", "sst2", "--mirror",
                        f"http://127.0.0.1:{slow.server_port}", wait=False)
    partial = data / "sst2" / "train.tsv.partial"
    deadline = time.time() + 60
    while not (partial.exists() and partial.stat().st_size > 200_000) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    slow.shutdown()
    assert 0 < partial.stat().st_size < SOURCES["sst2"].files["train.tsv"].size
    assert not (data / "sst2" / "train.tsv").exists()
    fast, handler = serve(shared_data, delay=0.0)
    done = run_fetch("--data_dir", data, "--benchmark", "sst2", "--mirror", f"http://127.0.0.1:{fast.server_port}")
    fast.shutdown()
    assert done.returncode == 0, done.stderr
    assert handler.ranges and handler.ranges[0] > 200_000  # it asked only for the rest
    assert sha256_of(data / "sst2" / "train.tsv") == SOURCES["sst2"].files["train.tsv"].sha256
    assert not partial.exists()


def test_without_network_or_mirror_it_is_one_line_and_status_2(tmp_path):
    closed = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "BENCHMARK_MIRROR": ""}
    done = run_fetch("--data_dir", tmp_path / "data", "--benchmark", "ag_news", env=closed)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "cannot reach raw.githubusercontent.com" in line and "--mirror DIR_OR_URL" in line
    assert "python -m common.data.fetch --data_dir" in line
    assert not (tmp_path / "data" / "ag_news").exists()


def test_a_users_data_folder_without_the_benchmark_names_the_command(tmp_path, recipe):
    (tmp_path / "mine").mkdir()
    with pytest.raises((DataError, OptionError), match=r"lacks sst2/.*python -m common.data.fetch --data_dir .*mine "
                                                       r"--benchmark sst2"):
        recipe("sentiment").main(["--data_dir", str(tmp_path / "mine"), "--output_dir", str(tmp_path / "o"),
                                  "--model", "unused"])
    assert list((tmp_path / "mine").iterdir()) == []  # nothing written into it


def test_the_data_doc_lists_every_pinned_file_with_its_commit_and_checksum(repo):
    listed = re.findall(r"^\| `(\w+)` \| `([\w.]+)` \| (.*?) \| `([0-9a-f]{64})` \|$", (repo / "docs" / "data.md").read_text(),
                        re.M)
    assert {(b, n, sha) for b, n, _, sha in listed} == {
        (b, n, pinned.sha256) for b, source in SOURCES.items() for n, pinned in source.files.items()}
    for benchmark, name, source, _ in listed:
        url = SOURCES[benchmark].url(name)
        assert (url is None and "from a mirror" in source) or f"({url})" in source
