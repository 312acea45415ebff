"""Extract a real DNA corpus for offline pretraining: the D. melanogaster (dm3) upstream sequences that Debian's
``r-bioc-biostrings`` package ships (26,454 sequences of 2,000 nt, 53 Mnt; UCSC's dm3 upstream2000.fa.gz as
packaged by Bioconductor's Biostrings, Artistic-2.0).

    python scripts/prepare_dna_data.py                 # apt-get download + dpkg -x; writes data/dna/dm3_upstream2000.fa.gz
    python scripts/prepare_dna_data.py --deb FILE.deb  # from a downloaded package

Then ``python train.py experiment=dna_pretrain_smoke data.source=fasta`` (or dna_pretrain_lmm data.source=fasta)
pretrains on it. The file is not shipped with the repository (data/dna/ is git-ignored).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "r-bioc-biostrings"
MEMBER = "usr/lib/R/site-library/Biostrings/extdata/dm3_upstream2000.fa.gz"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deb", help=f"a downloaded {PACKAGE} .deb (default: apt-get download it)")
    parser.add_argument("--out", default=str(ROOT / "data" / "dna"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        deb = Path(args.deb) if args.deb else None
        if deb is None:
            proc = subprocess.run(["apt-get", "download", PACKAGE], cwd=tmp, capture_output=True, text=True)
            debs = sorted(Path(tmp).glob(f"{PACKAGE}_*.deb"))
            if proc.returncode != 0 or not debs:
                print(f"error: apt-get download {PACKAGE} failed ({proc.stderr.strip().splitlines()[-1:] or '?'}): "
                      f"run apt-get update first, or pass --deb FILE", file=sys.stderr)
                return 2
            deb = debs[0]
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        source = Path(tmp) / "x" / MEMBER
        if not source.is_file():
            print(f"error: {deb} has no {MEMBER}", file=sys.stderr)
            return 2
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out / source.name)
        print(f"wrote {out / source.name} ({source.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
