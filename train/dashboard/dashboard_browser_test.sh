#!/usr/bin/env bash
# The dashboard in a real browser: trains LeNet briefly with --dashboard,
# holds the run before its last epoch (--hold_before_epoch, a test hook), so
# that the page is loaded in headless Chromium while the run is surely live
# on any machine, checks that it plots two epochs whose numbers are those of
# metrics.csv, saves a screenshot (test.outputs/dashboard.png), then releases
# the run and checks that the page shows it finished.
#
#   dashboard_browser_test.sh TRAINER
set -euo pipefail

trainer=$1
tmp=${TEST_TMPDIR:?}
outputs=${TEST_UNDECLARED_OUTPUTS_DIR:-$tmp}
export HOME=$tmp/home
mkdir -p "$HOME"

command -v chromium >/dev/null || {
  echo "FAIL: chromium is not installed (tools/setup.sh installs it)" >&2
  exit 1
}
browse() {  # browse URL FLAG...: headless Chromium on a fresh profile
  local url=$1
  shift
  timeout 60 chromium --headless --no-sandbox --disable-gpu \
    --disable-dev-shm-usage --no-first-run --user-data-dir="$tmp/chromium" \
    --window-size=1400,1500 --virtual-time-budget=3000 "$@" "$url" \
    2>>"$tmp/chromium.log"
}

# Trains 3 epochs and holds before the third until SIGUSR1.
"$trainer" --epochs=3 --hold_before_epoch=3 --train_limit=4096 \
  --test_limit=512 --threads=2 --dashboard=0 --dashboard_keep \
  --progress=false --out="$tmp/run" >"$tmp/train.log" 2>&1 &
trainer_pid=$!
trap 'kill "$trainer_pid" 2>/dev/null || true' EXIT

# wait_for_log PATTERN SECONDS WHAT: until the trainer's log matches PATTERN
# (grep -E); FAIL naming WHAT if the trainer exits or SECONDS pass first.
wait_for_log() {
  local deadline=$((SECONDS + $2))
  until grep -qE "$1" "$tmp/train.log"; do
    if ! kill -0 "$trainer_pid" 2>/dev/null; then
      echo "FAIL: the trainer exited before $3:" >&2
      cat "$tmp/train.log" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "FAIL: no $3 within $2 s:" >&2
      cat "$tmp/train.log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

# page_attribute NAME: data-NAME of the page's body in $tmp/page.html.
page_attribute() {
  { grep -o "data-$1=\"[a-z0-9]*\"" "$tmp/page.html" || true; } |
    head -1 | cut -d'"' -f2
}

wait_for_log 'dashboard: http://127\.0\.0\.1:[0-9]+/' 60 "dashboard address"
url=$(grep -oE 'dashboard: http://127\.0\.0\.1:[0-9]+/' "$tmp/train.log" |
  head -1 | cut -d' ' -f2)
echo "dashboard at $url"
# Under the sanitizers two epochs take a minute or more on 2 cores.
wait_for_log 'holding before epoch 3' 180 "hold before epoch 3"
echo "the trainer holds before epoch 3"

# The run stands still: one load (3 s of virtual time, fetches included) sees
# the page as it stays. A few tries only against a browser that fails.
for _ in 1 2 3; do
  browse "$url" --dump-dom >"$tmp/page.html" || true
  [[ $(page_attribute state) == training ]] && break
done
state=$(page_attribute state)
epochs=$(page_attribute epochs)
if [[ $state != training || $epochs != 2 ]]; then
  echo "FAIL: the page of the held run shows state '$state' and" \
    "'$epochs' epochs, not 'training' and 2; page and log:" >&2
  cat "$tmp/page.html" "$tmp/train.log" >&2
  exit 1
fi
echo "page shows $epochs epochs, live"

python3 - "$tmp/page.html" "$tmp/run/metrics.csv" <<'PY'
import csv, html.parser, sys

class Rows(html.parser.HTMLParser):
    """The rows of the page's table id="epochs" tbody, and its status."""
    def __init__(self):
        super().__init__()
        self.table = self.body = False
        self.rows, self.cell, self.ids = [], None, {}
        self.current_id = None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'table':
            self.table = a.get('id') == 'epochs'
        elif tag == 'tbody' and self.table:
            self.body = True
        elif tag == 'tr' and self.body:
            self.rows.append([])
        elif tag == 'td' and self.body:
            self.cell = ''
        self.current_id = a.get('id')
    def handle_endtag(self, tag):
        if tag == 'td' and self.cell is not None:
            self.rows[-1].append(self.cell)
            self.cell = None
        elif tag == 'table':
            self.table = self.body = False
    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        if self.current_id:
            self.ids[self.current_id] = self.ids.get(self.current_id, '') + data

page = Rows()
page.feed(open(sys.argv[1]).read())
with open(sys.argv[2]) as f:
    csv_rows = list(csv.DictReader(f))
if not page.rows:
    sys.exit('FAIL: no rows in the page table id="epochs"')
columns = ['epoch', 'loss', 'train_acc', 'test_acc', 'seconds',
           'examples_per_sec']
# The page formats as metrics.csv does: equal to its last digit.
tolerance = {'epoch': 0, 'loss': 1.5e-6, 'train_acc': 1.5e-6,
             'test_acc': 1.5e-6, 'seconds': 1.5e-3, 'examples_per_sec': 0.15}
bad = []
for i, row in enumerate(page.rows):
    if i >= len(csv_rows):
        bad.append(f'page row {row} has no metrics.csv row')
        continue
    for column, text in zip(columns, row):
        want = float(csv_rows[i][column])
        if abs(float(text) - want) > tolerance[column]:
            bad.append(f'epoch {i + 1} {column}: page {text}, csv {want}')
    if len(row) != len(columns):
        bad.append(f'page row {row} has {len(row)} cells, not {len(columns)}')
for field in ['step', 'lr', 'rate', 'state']:
    if page.ids.get(field, '-').strip() in ('', '-'):
        bad.append(f'status field {field!r} is empty')
if bad:
    sys.exit('FAIL:\n  ' + '\n  '.join(bad))
print(f'{len(page.rows)} epochs on the page equal metrics.csv:')
for row in page.rows:
    print('  ' + ' '.join(row))
PY

browse "$url" --screenshot="$outputs/dashboard.png" >/dev/null
size=$(stat -c %s "$outputs/dashboard.png" 2>/dev/null || echo 0)
if ((size < 20000)); then
  echo "FAIL: screenshot $outputs/dashboard.png missing or blank ($size bytes)" >&2
  exit 1
fi
echo "screenshot: $outputs/dashboard.png ($size bytes)"

# A bad request from a browser-like client is refused and the server goes on.
port=${url#http://127.0.0.1:}
port=${port%/}
python3 - "$port" <<'PY'
import http.client, sys
port = int(sys.argv[1])
def status(method, path, host=None):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    c.putrequest(method, path, skip_host=True)
    c.putheader('Host', host or f'127.0.0.1:{port}')
    c.endheaders()
    return c.getresponse().status
checks = [('POST', '/', None, 405), ('GET', '/etc/passwd', None, 404),
          ('GET', '/', 'attacker.example', 403),
          ('GET', '/api/metrics?since=x', None, 400), ('GET', '/', None, 200)]
for method, path, host, want in checks:
    got = status(method, path, host)
    if got != want:
        sys.exit(f'FAIL: {method} {path} (Host {host}): {got}, not {want}')
print('bad requests refused, the server still serving')
PY

# Released, the run trains its last epoch and, with --dashboard_keep, serves
# the finished run until Ctrl-C, which ends it with status 0.
kill -USR1 "$trainer_pid"
wait_for_log 'training ended; serving' 120 "end of training after the release"
browse "$url" --dump-dom >"$tmp/page.html" || true
state=$(page_attribute state)
epochs=$(page_attribute epochs)
if [[ $state != finished || $epochs != 3 ]]; then
  echo "FAIL: the page of the ended run shows state '$state' and" \
    "'$epochs' epochs, not 'finished' and 3; page and log:" >&2
  cat "$tmp/page.html" "$tmp/train.log" >&2
  exit 1
fi
echo "page shows $epochs epochs, finished"
kill -INT "$trainer_pid"
wait "$trainer_pid" && rc=0 || rc=$?
trap - EXIT
if ((rc != 0)); then
  echo "FAIL: the trainer exited with $rc after Ctrl-C, not 0:" >&2
  cat "$tmp/train.log" >&2
  exit 1
fi
echo PASS
