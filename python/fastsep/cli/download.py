"""`fastsep download`: Spleeter's release archives into the model cache, sha256 checked."""

from __future__ import annotations

from ..console import Console, download_progress
from ..errors import UsageError
from .exits import EXIT_OK


def add_parser(sub, common) -> None:
    d = sub.add_parser("download", parents=[common], help="download pretrained models",
                       description="Fetch Spleeter's official release archive, check its sha256 and unpack it "
                                   "into the model cache.")
    d.add_argument("names", nargs="+", metavar="NAME", help="2stems, 4stems or 5stems")
    d.add_argument("--force", action="store_true", help="download again even if present")
    d.add_argument("--archive", default=None, metavar="FILE",
                   help="install from a local NAME.tar.gz instead of downloading (sha256 is still checked)")


def run(args, con: Console) -> int:
    from ..models import download

    if args.archive and len(args.names) != 1:
        raise UsageError("--archive installs one model: give one NAME")
    for name in args.names:
        download.model_folder_name(name)  # unknown names fail before anything is fetched
    for name in args.names:
        key = download.model_folder_name(name)
        if not args.force and not args.archive:
            found = download.find_model(key)
            if found is not None:
                con.print(f"{key}: already in {found}")
                print(found)
                continue
        folder = download.download(key, force=args.force, archive=args.archive,
                                   progress=download_progress(con, f"downloading {key}"),
                                   log=lambda m: con.print(m))
        con.done()
        con.print(f"{key}: installed in {folder}")
        print(folder)
    return EXIT_OK
