"""Put the benchmarks into a data folder from pinned sources, each file checked byte for byte (sha256).

    python -m common.data.fetch                                   # every benchmark, into ../shared/data
    python -m common.data.fetch --data_dir data --benchmark sst2 --benchmark conll2003
    python -m common.data.fetch --data_dir data --mirror /media/copy-of-shared-data   # or https://host/data

Every file comes from a public GitHub repository at a fixed commit (`SOURCES`; the table in
../shared/data/README.md names the same ones), and its sha256 is that of the copy our figures were
measured on. A file is downloaded to `<name>.partial` (a rerun resumes it) and takes its name only
once its checksum matches; one whose checksum differs is moved to `.rejected/` in the data folder,
its name followed by both checksums (`dev.tsv.sha256-<its>.pinned-<ours>`), and never used. Files already there are checked, never
replaced. `--mirror` reads the same relative paths (`sst2/train.tsv`, ...) from a folder or a URL.
`zh_corpus` was compiled for this project from several sources (its README): it comes from a mirror.
"""

import argparse
import contextlib
import hashlib
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from common.data.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
MIRROR_VARIABLE = "BENCHMARK_MIRROR"  # a mirror for fetches the recipes start themselves
COMMAND = "python -m common.data.fetch"
CHUNK = 1 << 20


class Offline(DataError):
    """The pinned sources cannot be reached at all (no network, no mirror)."""


@dataclass(frozen=True)
class PinnedFile:
    """One file of a benchmark: where it lies in the source repository, and its sha256 and size."""

    path: str | None  # in the repository at the commit; None: only from a mirror
    sha256: str
    size: int
    repository: str | None = None  # a file from another repository than its benchmark's (and its commit)
    commit: str | None = None
    member: str | None = None  # the file is this member of the zip archive at `path` (a mirror holds it as is)


@dataclass(frozen=True)
class Source:
    """A benchmark's repository at a fixed commit, and its files by their name in the data folder."""

    repository: str | None
    commit: str | None
    files: dict[str, PinnedFile]

    def url(self, name: str) -> str | None:
        """The file's raw URL at the pinned commit (None when it only comes from a mirror)."""
        pinned = self.files[name]
        repository, commit = (pinned.repository, pinned.commit) if pinned.repository else (self.repository, self.commit)
        if repository is None or pinned.path is None:
            return None
        return f"https://raw.githubusercontent.com/{repository}/{commit}/{pinned.path}"


SOURCES = {
    "sst2": Source("eyalbd2/Reproducing-AutoPrompt", "53e9e221b58e5ed882a56c9d8be838b895351165", {
        "train.tsv": PinnedFile("glue_data/SST-2/train_full.tsv",
                                "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1", 3806081),
        "dev.tsv": PinnedFile("glue_data/SST-2/dev.tsv",
                              "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0", 94931),
        "test.tsv": PinnedFile("glue_data/SST-2/test.tsv",
                               "69a938605609b3e6663b4487918fe1565eb293734e6e520d0366d1d412fd2a13", 197335)}),
    "ag_news": Source("suuuch/TransformerClassification", "ba663f263ca24ed7efd6ccf6572418775c1f2da0", {
        "test.csv": PinnedFile("data/ag_news_csv/test.csv",
                               "521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699", 1857427),
        "classes.txt": PinnedFile("data/ag_news_csv/classes.txt",
                                  "612dbfa932f07a6ed837295a7d5746ce7412e7bb4bc32ba919fdb3cda3a1b9b5", 31),
        "readme.txt": PinnedFile("data/ag_news_csv/readme.txt",
                                 "779c2e6bbf93dd810d9c7b318006daef7a4bfc34062002461d251dc10fb9f58c", 1795)}),
    "bbc_news": Source("LTSACH/AILearningHub", "38c4dfa48f34344f2e73eebbb93974928943a8c8", {
        "train.csv": PinnedFile("datasets/bbcnews/data/train.csv",
                                "9462cc0545ba311cf2fd9adea93a9c1f76fd1d2760efef0715ed707b6c5c8686", 3550849),
        "val.csv": PinnedFile("datasets/bbcnews/data/val.csv",
                              "ae64b0c9bd7faab277aab578ee40a95400b23cd4e4fec22159743050b418d213", 750464),
        "test.csv": PinnedFile("datasets/bbcnews/data/test.csv",
                               "2fae8b8fb808922b9ddc5e74c1a287177d91da521cf43ecc4b0a8be9f98935d3", 775646)}),
    "conll2003": Source("zlmao666/nlp_final", "2c3e28c5386477ab593ea014c4ff5c9ae1145a3f", {
        "train.txt": PinnedFile("conll2003/train.txt",
                                "213953b5522fb7924802d883e50f027b2c6ffb5d4d0e63368ed82909f9b60423", 3283420),
        "valid.txt": PinnedFile("conll2003/valid.txt",
                                "c02eb19809eafb83998326a0481942eb37d96f31826ae387cfe8773699969f5b", 827443),
        "test.txt": PinnedFile("conll2003/test.txt",
                               "dc4ac7f3d6d01a6bec59261814561da3b287b6b493b97d1f69c580b52ec1831b", 748095)}),
    "chnsenticorp": Source("pengming617/bert_classification", "073b181e3b6ae5abd17820bc42851c5de3c9daa5", {
        "train.tsv": PinnedFile("data/train.tsv",
                                "0b2653c23e5c79f539472e90cb10522f0ada4b80d3da95572d8b48fda47d5b33", 3019974),
        "dev.tsv": PinnedFile("data/dev.tsv",
                              "d129e443eac08ce7643013dad496a8edf282be39cac1a4f2ad080818b296b331", 374230),
        "test.tsv": PinnedFile("data/test.tsv",
                               "34f9d71eba6096cd8689e18913d28cf9a5f3c18a6c2804cd13304a321738c4bc", 369742)}),
    "cluener2020": Source("tianchang93284/ner_new_source_car", "09f372785563f26bd76087377121e32795795980", {
        "train.json": PinnedFile("pytorch_version/CLUEdatasets/cluener/train.json",
                                 "60299d202779dc84f3c3bd81f4dc08f5323d0dbf762cb50cd62dd51aa9a871f8", 2262996),
        "dev.json": PinnedFile("pytorch_version/CLUEdatasets/cluener/dev.json",
                               "90036b59832e007c45d11eafe5ed80549f58a18a29aaa7fe8b1229622c69ec38", 285089),
        "test.json": PinnedFile("pytorch_version/CLUEdatasets/cluener/test.json",
                                "5ca36f6fbe29230a6e3244110fcd9487fc2f5a672f5bfeba82a30f0ece72aa69", 176253)}),
    "cola": Source("nyu-mll/CoLA-baselines", "dd095d3646ed05a315280aaa8ed4ec84ba435b3e", {
        "train.tsv": PinnedFile("acceptability_corpus/raw/in_domain_train.tsv",
                                "cb368ebeb9f27d7ad03720d27ddc95687a311bdb100781a2fe59a5f5b1bc0624", 428590),
        "dev.tsv": PinnedFile("data/CoLA/dev.tsv", "8c013e21dc39957cac37378d87bebe225b694a0d5fe13eded66c2856628833fd",
                              53717, "amrnag/Specialized-Transformers", "fa673a93a5c27cb1f5954ac2a8a49eec6fcba6b9")}),
    "mrpc": Source("Nstats/my_bert", "733d79335044b1b7eabb5b47a0eae0cd621dadc0", {
        "train.tsv": PinnedFile("data/MRPC/train.tsv",
                                "122becc469405bc16f9defcb8715d2a4b7ce600e9d9381e6dc42bfdd1494c51d", 919457),
        "dev.tsv": PinnedFile("data/MRPC/dev.tsv",
                              "81c8a1a9e1dfe461dd2c1a4f98f43fe18bece44d2bf9e3d0b245b88e5aa5eaf7", 103255)}),
    "rte": Source("marcwww/nlu_eval", "1403aef7eeb8e0876e28835daf0fa64918bea396", {
        "train.tsv": PinnedFile("data/RTE/train_copy.tsv",  # that repository's own train.tsv has one row altered
                                "41e3a9b063433392343fad9e962cf2f58b681c78d8f71592f4186f0837246c5c", 846226),
        "dev.tsv": PinnedFile("data/RTE/dev.tsv",
                              "80230dfa1347282e7b532b06a1004a76a710087541189bf874223ddf0e3819fb", 90343)}),
    "stsb": Source("mieseung/Cutoff_with_Attribution", "0ef7460ee83f01034891e92b4f405d2c14944daf", {
        "train.tsv": PinnedFile("glue_data/STS-B/train.tsv",
                                "41c4d978b6162abdcada7e49a982211954cca5459c228db478af333124b257a2", 984099),
        "dev.tsv": PinnedFile("glue_data/STS-B/dev.tsv",
                              "fe7dc0632a5033562f3cadff991f6e8d9b9b6311861660e78c3c82eb7db67f59", 276928),
        "LICENSE.txt": PinnedFile("glue_data/STS-B/LICENSE.txt",
                                  "3dfc3217395f8c5dd05c5f8995f25fe2f8fd258e6dd770b3de480749caee8c70", 6641)}),
    "ocnli": Source("shs910/Transfer-learning", "28d7733124d42067826630024f14031d64645e5c", {  # CLUE's own zip
        "train.50k.json": PinnedFile("ocnli_public.zip",
                                     "cb47a6c00105bfb49bbb791dd537b284d3138f9f1ad5cd1e187afc470ff004e0", 14627367,
                                     member="train.50k.json"),
        "dev.json": PinnedFile("ocnli_public.zip", "001ded235d73a18dac68a45a38cd5f9b3f9311fa4246df623e199422c073ddc5",
                               977426, member="dev.json")}),
    "zh_corpus": Source(None, None, {
        "news.txt.gz": PinnedFile(None, "27ea06908492e073ee9ea57f3810d00aa285880399dcc7397ced7702ecdfd847", 5912484),
        "reviews.txt.gz": PinnedFile(None, "9c0e650842bbe74b2f69f91cd2e69b1dd49ecb50c65b250316b1a99897061eae",
                                     5735671)}),
}


def sha256_of(path: Path) -> str:
    """The file's sha256, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def source_of(benchmark: str, name: str, mirror: str | None) -> str | None:
    """Where the file is read from: the mirror's same relative path, else the pinned URL."""
    if mirror:
        return (mirror.rstrip("/") + "/" if "://" in mirror else str(Path(mirror)) + os.sep) + f"{benchmark}/{name}"
    return SOURCES[benchmark].url(name)


def copy_into(source: str, partial: Path) -> None:
    """Append the source's bytes after those `partial` already holds (a cut download resumes)."""
    done = partial.stat().st_size if partial.exists() else 0
    if "://" not in source:
        with open(source, "rb") as reader, open(partial, "ab") as writer:
            reader.seek(done)
            shutil.copyfileobj(reader, writer, CHUNK)
        return
    request = urllib.request.Request(source, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        if error.code == 416 and done:  # already whole: the checksum decides
            return
        raise
    with response, open(partial, "ab" if response.status == 206 else "wb") as writer:  # 200: the whole file again
        shutil.copyfileobj(response, writer, CHUNK)


def fetch_file(data_dir: Path, benchmark: str, name: str, mirror: str | None) -> tuple[str, str]:
    """One file into place: (status, detail). Status: present, fetched, refused or failed."""
    pinned = SOURCES[benchmark].files[name]
    target = data_dir / benchmark / name
    if target.exists():
        found = sha256_of(target)
        if found == pinned.sha256:
            return "present", "checksum matches"
        return "refused", f"the file there has sha256 {found}, the pinned copy {pinned.sha256}: left as it is, not used"
    source = source_of(benchmark, name, mirror)
    if source is None:
        return "failed", (f"compiled for this project, not on a public URL: take it from a mirror "
                          f"({COMMAND} --mirror DIR_OR_URL, e.g. a copy of ../shared/data)")
    partial = target.with_name(name + ".partial")
    archive = target.with_name(name + ".zip.partial") if pinned.member and not mirror else None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_into(source, archive or partial)
        if archive:  # the member out of the whole archive; its checksum decides below
            with zipfile.ZipFile(archive) as zipped:
                partial.write_bytes(zipped.read(pinned.member))
            archive.unlink()
    except (zipfile.BadZipFile, KeyError) as error:
        return "failed", f"{source}: not a zip holding {pinned.member} ({error}); what arrived is in {archive.name}"
    except (OSError, urllib.error.URLError) as error:  # HTTPError is a URLError; a missing mirror file an OSError
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
        if partial.exists() and partial.stat().st_size == 0:
            partial.unlink()
        if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError) \
                and not partial.exists():  # no connection at all: every other file would fail the same way
            with contextlib.suppress(OSError):
                target.parent.rmdir()  # an empty folder would pass for the benchmark
            raise Offline(f"cannot reach {source.split('/')[2]} ({reason}): without internet, give --mirror "
                          f"DIR_OR_URL (a copy of ../shared/data, or a mirror with the same paths), e.g. `{COMMAND} "
                          f"--data_dir {data_dir} --benchmark {benchmark} --mirror /path/to/data`; the pinned "
                          "sources are listed in the README's data table") from None
        kept = f" (what arrived stays in {partial.name}; a rerun resumes)" if partial.exists() else ""
        return "failed", f"{source}: {reason}{kept}"
    found = sha256_of(partial)
    if found != pinned.sha256:
        # named with its own checksum and the pinned one, so that copies refused on different days all stay
        rejected = data_dir / ".rejected" / benchmark / f"{name}.sha256-{found[:16]}.pinned-{pinned.sha256[:16]}"
        rejected.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, rejected)
        return "refused", f"{source} has sha256 {found}, the pinned copy {pinned.sha256}: kept aside as {rejected}"
    os.replace(partial, target)
    return "fetched", source


def fetch(data_dir: Path, benchmarks: list[str], mirror: str | None = None) -> list[tuple[str, str, str, str]]:
    """Every file of `benchmarks` into `data_dir`: one (benchmark, file, status, detail) row each."""
    unknown = sorted(set(benchmarks) - set(SOURCES))
    if unknown:
        raise DataError(f"--benchmark {', '.join(unknown)}: not a benchmark this project pins ({', '.join(SOURCES)})")
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"--data_dir {data_dir}: a file, not a folder; give the folder the benchmarks go into")
    if mirror and "://" not in mirror and not Path(mirror).is_dir():
        raise DataError(f"--mirror {mirror}: no such folder")
    return [(benchmark, name, *fetch_file(data_dir, benchmark, name, mirror))
            for benchmark in benchmarks for name in SOURCES[benchmark].files]


def missing(data_dir: Path, benchmark: str) -> list[str]:
    """The benchmark's pinned files not in `data_dir` (none when it is whole)."""
    return [name for name in SOURCES.get(benchmark, Source(None, None, {})).files
            if not (data_dir / benchmark / name).exists()]


def inside_checkout() -> bool:
    """Whether the running program lies in this project's checkout (a recipe folder copied elsewhere does not,
    and must not read the checkout's ../shared/data without being told)."""
    program = sys.argv[0] if sys.argv and sys.argv[0] else "-c"
    return REPO_ROOT in Path(program).resolve().parents


def ensure_benchmark(data_dir: Path, benchmark: str, ours: bool) -> None:
    """Before a recipe reads a benchmark: fetch what is missing into our default folder (`ours`); a user's
    own folder is never written to unasked, so there a missing benchmark is one line naming the command."""
    lacking = missing(data_dir, benchmark)
    if not lacking:
        return
    command = f"{COMMAND} --data_dir {data_dir} --benchmark {benchmark}"
    if not ours:
        raise DataError(f"{data_dir} lacks {benchmark}/{lacking[0]}: fetch it with `{command}` (pinned sources, "
                        "checked by sha256; without internet add --mirror DIR_OR_URL)")
    rows = fetch(data_dir, [benchmark], os.environ.get(MIRROR_VARIABLE))
    failed = [row for row in rows if row[2] in ("failed", "refused")]
    if failed:
        benchmark, name, status, detail = failed[0]
        raise DataError(f"{benchmark}/{name} {status}: {detail}. Run `{command} --mirror DIR_OR_URL` with a copy of "
                        f"the data (or set {MIRROR_VARIABLE})")


def main(argv=None) -> int:
    """Fetch, print the summary table; exit status 2 if any file failed or was refused."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=os.environ.get("DATA_DIR") or str(DEFAULT_DATA_DIR))
    parser.add_argument("--benchmark", action="append", choices=list(SOURCES),
                        help="One benchmark (repeat for several; default: all).")
    parser.add_argument("--mirror", default=os.environ.get(MIRROR_VARIABLE),
                        help="A folder or URL holding the same relative paths (sst2/train.tsv, ...).")
    args = parser.parse_args(argv)
    try:
        rows = fetch(Path(args.data_dir), args.benchmark or list(SOURCES), args.mirror)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("| benchmark | file | status | detail |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    counts = {status: sum(row[2] == status for row in rows) for status in ("present", "fetched", "refused", "failed")}
    print(f"{args.data_dir}: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    if counts["failed"] or counts["refused"]:
        print(f"error: {counts['failed'] + counts['refused']} file(s) not in place (see the table); offline, give "
              f"--mirror DIR_OR_URL (a copy of ../shared/data, or an internal mirror with the same paths)",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
