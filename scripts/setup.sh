#!/usr/bin/env bash
# Set up a fresh machine for dsatok: Debian speech synthesisers + Python packages.
# Idempotent: re-running it only installs what is missing.
#   bash scripts/setup.sh            # runtime + corpus + train + eval + dev extras
#   DSATOK_NO_APT=1 bash scripts/setup.sh   # skip Debian packages (no root)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}

APT_MAIN="espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts flite sox libsndfile1"
APT_NONFREE="mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 libttspico-utils festvox-rablpc16k festvox-don
  mbrola-af1 mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 mbrola-de5 mbrola-de6 mbrola-fr1 mbrola-fr4
  mbrola-gr2 mbrola-hu1 mbrola-nl2 mbrola-pl1 mbrola-ro1 mbrola-sw1 mbrola-sw2 fortunes fortunes-min"

need_apt=0
for p in $APT_MAIN $APT_NONFREE; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || { need_apt=1; break; }
done
if [ "${DSATOK_NO_APT:-0}" != 1 ] && [ "$need_apt" = 1 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  src=/etc/apt/sources.list.d/dsatok-nonfree.sources
  if [ ! -f "$src" ]; then
    $SUDO tee "$src" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_MAIN $APT_NONFREE >/dev/null
fi

# torch first, pinned to the CPU build on disk, so no dependency can pull a CUDA build.
if ! $PY -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  $PY -m pip install -q torch==2.13.0
fi
# distillmos imports torchaudio (no CPU build here) and xls-r-sqa: install both without their deps;
# dsatok registers an empty torchaudio module before importing it.
$PY -m pip install -q -e "$here[all]"
$PY -m pip install -q --no-deps distillmos==0.9.1 xls-r-sqa==0.1.0
echo "dsatok setup done"
