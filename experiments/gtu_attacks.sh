#!/usr/bin/env bash
# Issue 4's experiment: SMART and the baselines against GTU3DActions recognizers, whole test split.
# Usage: experiments/gtu_attacks.sh [ARCH ...]   (default: stgcn agcn); results in $DATA_DIR/reports/gtu-attacks
# --precision fp32: the README's numbers were measured on the exact float32 path (README, Attack engine speed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
export DATA_DIR=${DATA_DIR:-$PWD/var/experiments/gtu}
archs=${*:-stgcn agcn}
python manage.py migrate -v0
python manage.py import_dataset gtu ../shared/datasets/gtu3dactions --name gtu --no-progress
for arch in $archs; do
  python manage.py train_recognizer --dataset gtu --arch "$arch" --name "gtu-$arch" --no-progress \
    || python manage.py shell -c "from attacks.models import Recognizer; assert Recognizer.objects.get(name='gtu-$arch').status == Recognizer.Status.READY"
done
for arch in $archs; do
  others=$(for a in $archs; do [ "$a" != "$arch" ] && printf 'gtu-%s ' "$a"; done; true)
  run() { python manage.py generate_samples --precision fp32 --recognizer "gtu-$arch" --no-progress "$@"; }
  run --method smart --strategy ab ${others:+--transfer-to $others}
  run --method smart --strategy abn --top-n 3
  run --method smart --strategy abn --top-n 5
  run --method smart --strategy sa
  for m in l2 l2-acc l2-bone iaa ciasa; do run --method "$m" --strategy ab; done
done
python manage.py robustness_report --out "$DATA_DIR/reports/gtu-attacks" --name gtu-attacks
# SMART against its ablations at matched success (a sweep of w), on the first architecture
first=${archs%% *}
python experiments/perceptual_ablation.py --recognizer "gtu-$first" --no-progress --weights 0.4 0.5 0.6 \
  --smart-variant unbalanced-per-second:balance_terms=false \
  --smart-variant unbalanced-per-frame:balance_terms=false,time_unit=frame \
  --out "$DATA_DIR/reports/gtu-attacks/ablation"
# SMART's presets x methods on every architecture (README, "SMART presets on GTU3DActions")
python experiments/preset_table.py --no-progress --out "$DATA_DIR/reports/gtu-attacks/presets" \
  --recognizer $(for a in $archs; do printf 'gtu-%s ' "$a"; done)
# Transfer on a `smart`-protocol import (60-frame windows, root-centred, facing normalised)
python manage.py import_dataset gtu ../shared/datasets/gtu3dactions --name gtu-smart --protocol smart --no-progress
for arch in stgcn agcn; do
  python manage.py train_recognizer --dataset gtu-smart --arch "$arch" --name "gtu-smart-$arch" --no-progress \
    || python manage.py shell -c "from attacks.models import Recognizer; assert Recognizer.objects.get(name='gtu-smart-$arch').status == Recognizer.Status.READY"
done
python manage.py generate_samples --precision fp32 --recognizer gtu-smart-stgcn --method smart --strategy ab \
  --transfer-to gtu-smart-agcn --no-progress
