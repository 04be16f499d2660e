#!/usr/bin/env python3
"""Hostile clients of a trainer's dashboard, and what they cost training.

    hostile_clients.py attack PORT [--seconds=30]
    hostile_clients.py measure --trainer=bazel-bin/models/lenet/train \\
        [--rounds=3] [-- TRAINER_FLAGS...]

`attack` runs eight clients against http://127.0.0.1:PORT/ (never another
host) for --seconds, then prints what each did:

  * 2 idle floods: --idle connections in all (1,000) that send nothing,
    each opened again within a second when the server closes it;
  * 2 slowloris clients: --slowloris connections in all (10) that send a
    request line, then one header line every 2 s, never the end of the head;
  * 2 full-history pollers: GET /api/metrics?since=-1, --rate a second each;
  * 2 compression clients: GET /chart.js with "Accept-Encoding: br" and
    "gzip, deflate, br" in turn (brotli at quality 11 used to be done per
    request), --rate a second each.

--rate=0 sends the next request as soon as the last is answered; the
clients' own CPU then competes with training on a small machine (reported).

`measure` trains two epochs with --dashboard=0 --hold_before_epoch=2 in
three arms, --rounds times each, in an order that turns each round (so
that a drift of the machine's speed touches all alike):

  * baseline: no clients;
  * decoy: the clients attack another process's dashboard (a trainer that
    trained one step and serves on with --dashboard_keep), so that their
    own cost to the machine (their CPU, the kernel's TCP work, the decoy's
    server) is in the run but not the trainer's dashboard;
  * attacked: the clients attack the trainer's own dashboard.

Each run is held before epoch 2 until the clients' connections are open
(then 0.5 s more, clients or not), so that the second epoch trains entirely
under attack and the history of the first is there to poll. It reports
each run's epoch-2 examples/s (the trainer's own count), peak RSS, CPU
seconds (the trainer's, and of those its server threads', which run at
nice 19) and exit status, the ratios of the arms round by round (attacked /
decoy is what the dashboard costs training; decoy / baseline what the
clients cost the machine), then one more attacked run that gets SIGTERM
--sigterm_after seconds into epoch 2, and how long it took to exit. The
default trainer flags, LeNet's recipe on all 60,000 images: --train_limit=
60000 --test_limit=1000 --threads=2 (--epochs is always 2).

Stdlib only; the clients are hostile_attacks.py's, beside this file.
Counts and durations are bounded (at most 5,000 connections, 600 s).
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import hostile_attacks


def attack(args):
    """Attacks until --seconds pass or SIGINT / SIGTERM; prints "ready" once
    every flood's connections are open, and each client's numbers at the
    end."""
    hostile_attacks.raise_file_limit(args.idle + args.slowloris)
    cpu = time.process_time()
    running = hostile_attacks.start_attack(args.port, args)
    ended = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: ended.set())
    deadline = time.monotonic() + args.seconds
    for s in running[2]:
        s.ready.wait(timeout=max(0.0, deadline - time.monotonic()))
    print(f'ready: attacking {hostile_attacks.HOST}:{args.port}', flush=True)
    ended.wait(timeout=max(0.0, deadline - time.monotonic()))
    for line in hostile_attacks.end_attack(*running):
        print(line)
    print(f'clients\' own CPU: {time.process_time() - cpu:.1f} s', flush=True)


def server_cpu_sampler(pid, stop, result):
    """Sums, every 0.2 s until `stop`, the CPU seconds of the trainer's
    threads at nice 19 (the dashboard's server, http_server.h) into
    result[0]: the last sample before they end."""
    tick = os.sysconf('SC_CLK_TCK')
    while not stop.wait(0.2):
        total = 0
        try:
            for tid in os.listdir(f'/proc/{pid}/task'):
                with open(f'/proc/{pid}/task/{tid}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
                # utime, stime and nice: fields 14, 15 and 19 of stat(5).
                if int(fields[16]) == 19:
                    total += int(fields[11]) + int(fields[12])
        except OSError:
            continue  # a thread (or the trainer) ended meanwhile
        result[0] = total / tick


def run_trainer(args, arm, out_dir, sigterm_after=None, decoy_port=None):
    """Trains two epochs, held before the second (--hold_before_epoch=2)
    until the clients' connections are open, then 0.5 s more (without
    clients too); returns what was measured, epoch 2's examples/s first.
    `arm`: 'baseline' (no clients), 'decoy' (clients on `decoy_port`) or
    'attacked' (clients on the trainer's dashboard)."""
    command = [args.trainer, '--dashboard=0', '--progress=false',
               f'--out={out_dir}'] + args.trainer_flags + [
                   '--epochs=2', '--hold_before_epoch=2']
    proc = subprocess.Popen(command, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    log, running, port, released = [], None, None, None
    term_sent = []  # when SIGTERM was sent
    server_cpu, sampling = [0.0], threading.Event()
    threading.Thread(target=server_cpu_sampler,
                     args=(proc.pid, sampling, server_cpu), daemon=True).start()
    clients_cpu = time.process_time()

    def terminate():
        term_sent.append(time.monotonic())
        proc.send_signal(signal.SIGTERM)

    timer = threading.Timer(sigterm_after or 0, terminate)
    for line in proc.stdout:
        log.append(line)
        m = re.search(r'dashboard: http://127\.0\.0\.1:(\d+)/', line)
        if m and port is None:
            port = int(m.group(1))
        if 'holding before epoch 2' in line:
            if arm != 'baseline':
                running = hostile_attacks.start_attack(
                    decoy_port if arm == 'decoy' else port, args)
                for s in running[2]:
                    s.ready.wait(timeout=30)
            time.sleep(0.5)
            proc.send_signal(signal.SIGUSR1)
            released = time.monotonic()
            if sigterm_after is not None:
                timer.start()
    ended = time.monotonic()  # its output closed: it exited
    timer.cancel()
    lines = hostile_attacks.end_attack(*running) if running else []
    _, status, usage = os.wait4(proc.pid, 0)
    sampling.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = ''.join(log)
    rate = re.search(r'epoch 2: .* ([\d.]+) examples/sec', text)
    return {
        'arm': arm,
        'rc': proc.returncode,
        'examples_per_sec': float(rate.group(1)) if rate else 0.0,
        'rss_mb': usage.ru_maxrss / 1024,
        'cpu_s': usage.ru_utime + usage.ru_stime,
        'server_cpu_s': server_cpu[0],
        'wall_s': ended - released if released else 0.0,
        'exit_after_term_s': ended - term_sent[0] if term_sent else None,
        'clients_cpu_s': time.process_time() - clients_cpu,
        'clients': lines,
        'log': text,
    }


def start_decoy(args, tmp):
    """A trainer that trains one step and keeps serving its dashboard
    (--dashboard_keep): the same server as the measured trainer's, in
    another process. Returns (process, port)."""
    proc = subprocess.Popen(
        [args.trainer, '--dashboard=0', '--dashboard_keep', '--progress=false',
         '--epochs=1', '--train_limit=256', '--test_limit=64', '--threads=1',
         f'--out={os.path.join(tmp, "decoy")}'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        m = re.search(r'training ended; serving http://127\.0\.0\.1:(\d+)/',
                      line)
        if m:
            # Its output goes on being read, so that it never blocks.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, int(m.group(1))
    sys.exit('the decoy trainer exited: ' + str(proc.wait()))


def measure(args):
    hostile_attacks.raise_file_limit(args.idle + args.slowloris)
    if not args.trainer_flags:
        args.trainer_flags = ['--train_limit=60000', '--test_limit=1000',
                              '--threads=2']
    print('trainer:', args.trainer, ' '.join(args.trainer_flags))
    print(f'clients: {args.idle} idle connections, {args.slowloris} '
          f'slowloris, 2 full-history pollers and 2 compression clients at '
          f'{args.rate or "unlimited"} requests/s each')
    arms = ['baseline', 'decoy', 'attacked']
    runs = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        decoy, decoy_port = start_decoy(args, tmp)
        for i in range(args.rounds):
            # The order turns each round, so that no arm always comes first.
            for arm in arms[i % 3:] + arms[:i % 3]:
                r = run_trainer(args, arm, os.path.join(tmp, f'{arm}{i}'),
                                decoy_port=decoy_port)
                runs[arm].append(r)
                print(f'{arm:8}  rc {r["rc"]}  {r["examples_per_sec"]:8.1f} '
                      f'examples/s  RSS {r["rss_mb"]:6.1f} MB  trainer CPU '
                      f'{r["cpu_s"]:5.2f} s (its server {r["server_cpu_s"]:4.2f}'
                      f' s)  clients CPU {r["clients_cpu_s"]:4.2f} s',
                      flush=True)
                if r['rc'] != 0:
                    print(r['log'][-3000:])
        for line in runs['attacked'][-1]['clients']:
            print('   ', line)

        def med(arm, key):
            return statistics.median(r[key] for r in runs[arm])

        def ratio(a, b):
            # Run by run within a round: the load drifts less within one.
            each = [x['examples_per_sec'] / y['examples_per_sec']
                    for x, y in zip(runs[a], runs[b])]
            return (f'{a} / {b}: median {statistics.median(each):.3f} ('
                    + ' '.join(f'{r:.3f}' for r in each) + ')')

        print('median epoch-2 examples/s: ' + ', '.join(
            f'{arm} {med(arm, "examples_per_sec"):.1f}' for arm in arms))
        print(ratio('decoy', 'baseline'), ' <- the clients\' own cost')
        print(ratio('attacked', 'decoy'), ' <- the dashboard\'s')
        print(ratio('attacked', 'baseline'))
        print(f'the trainer\'s server threads in the attacked runs: median '
              f'{med("attacked", "server_cpu_s"):.2f} CPU-s in '
              f'{med("attacked", "wall_s"):.1f} s (the trainer: '
              f'{med("attacked", "cpu_s"):.1f} CPU-s)')
        print('median peak RSS: ' + ', '.join(
            f'{arm} {med(arm, "rss_mb"):.1f} MB' for arm in arms) +
              f' (attacked - baseline: '
              f'{med("attacked", "rss_mb") - med("baseline", "rss_mb"):+.1f}'
              ' MB)')
        print('exit statuses:', [r['rc'] for arm in arms for r in runs[arm]])
        if args.sigterm_after > 0:
            r = run_trainer(args, 'attacked', os.path.join(tmp, 'term'),
                            sigterm_after=args.sigterm_after)
            after = r['exit_after_term_s']
            print(f'SIGTERM {args.sigterm_after} s into epoch 2 under attack: '
                  f'exit status {r["rc"]}, '
                  + (f'{after:.2f} s after the signal' if after is not None
                     else 'ended before the signal'))
        decoy.send_signal(signal.SIGINT)
        decoy.wait()


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    for name in ('attack', 'measure'):
        p = sub.add_parser(name)
        p.add_argument('--idle', type=int, default=1000)
        p.add_argument('--slowloris', type=int, default=10)
        p.add_argument('--rate', type=float, default=20,
                       help='requests/s of each poller (0: back to back)')
        if name == 'attack':
            p.add_argument('port', type=int)
            p.add_argument('--seconds', type=float, default=30)
        else:
            p.add_argument('--trainer', required=True)
            p.add_argument('--rounds', type=int, default=3)
            p.add_argument('--sigterm_after', type=float, default=1,
                           help='seconds into epoch 2; 0: no SIGTERM run')
            p.add_argument('trainer_flags', nargs='*')
    args = parser.parse_args()
    if not 0 <= args.idle + args.slowloris <= 5000:
        parser.error('at most 5,000 connections')
    if args.command == 'attack':
        if not 0 < args.seconds <= 600:
            parser.error('--seconds: in (0, 600]')
        attack(args)
    else:
        if not 1 <= args.rounds <= 20:
            parser.error('--rounds: 1 to 20')
        measure(args)


if __name__ == '__main__':
    main()
