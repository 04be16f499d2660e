// The training dashboard's page: polls /api/metrics once a second and draws
// what it returns (see train/dashboard/dashboard.h for the JSON). Every
// value reaches the page through textContent or Chart.js, never as HTML.
'use strict';

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

// The per-step chart: the server's buckets (its older steps, each bucket
// drawn at its middle step with its mean loss and accuracy, and the range of
// its losses as a band), then its latest steps one by one. A poll asks for
// the steps after the last one drawn; an answer with the whole history
// ("full") replaces what is drawn. Past MAX_POINTS points the page asks for
// the whole (bounded) history again, so that it stays bounded too.
const MAX_POINTS = 8192;
let lastStep = -1;    // the latest step received: the next poll's `since`
const stepLoss = [];  // {x: step, y: loss}
const stepAcc = [];   // {x: step, y: batch accuracy}
const lossMax = [];   // {x: step, y: the highest loss of a bucket}
const lossMin = [];   // {x: step, y: the lowest}

Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;

// The right-hand [0, 1] axis that both training charts plot accuracy on.
const accuracyAxis = () => ({
  position: 'right',
  min: 0,
  max: 1,
  grid: {drawOnChartArea: false},
  title: {display: true, text: 'accuracy'},
});

const stepChart = new Chart($('step-chart'), {
  type: 'line',
  data: {
    datasets: [
      {
        label: 'loss',
        data: stepLoss,
        borderColor: '#1f77b4',
        yAxisID: 'loss',
        pointRadius: 0,
        borderWidth: 1
      },
      {
        label: 'batch accuracy',
        data: stepAcc,
        borderColor: '#ff7f0e',
        yAxisID: 'acc',
        pointRadius: 0,
        borderWidth: 1
      },
      {
        label: 'loss range',
        data: lossMax,
        yAxisID: 'loss',
        pointRadius: 0,
        borderWidth: 0,
        backgroundColor: 'rgba(31, 119, 180, 0.2)',
        fill: '+1',  // down to the lowest losses
      },
      {
        label: '',
        data: lossMin,
        yAxisID: 'loss',
        pointRadius: 0,
        borderWidth: 0
      },
    ],
  },
  options: {
    parsing: false,
    plugins: {legend: {labels: {filter: (item) => item.text !== ''}}},
    scales: {
      x: {type: 'linear', title: {display: true, text: 'step'}},
      loss: {position: 'left', title: {display: true, text: 'loss'}},
      acc: accuracyAxis(),
    },
  },
});

const epochChart = new Chart($('epoch-chart'), {
  type: 'line',
  data: {
    labels: [],
    datasets: [
      {label: 'train loss', data: [], borderColor: '#1f77b4', yAxisID: 'loss'},
      {
        label: 'train acc',
        data: [],
        borderColor: '#9467bd',
        yAxisID: 'acc',
        borderDash: [6, 3]
      },
      {
        label: 'test acc',
        data: [],
        borderColor: '#2ca02c',
        yAxisID: 'acc',
        borderDash: [2, 2]
      },
    ],
  },
  options: {
    scales: {
      x: {title: {display: true, text: 'epoch'}},
      loss: {position: 'left', min: 0, title: {display: true, text: 'loss'}},
      acc: accuracyAxis(),
    },
  },
});

const layerChart = new Chart($('layer-chart'), {
  type: 'bar',
  data: {
    labels: [],
    datasets: [
      {label: 'forward', data: [], backgroundColor: '#1f77b4'},
      {label: 'backward', data: [], backgroundColor: '#ff7f0e'},
    ],
  },
  options: {
    indexAxis: 'y',
    scales: {
      x: {stacked: true, title: {display: true, text: 'ms per step'}},
      y: {stacked: true, ticks: {autoSkip: false}}
    },
  },
});

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fixed(v, digits) {
  return v === null || v === undefined ? '-' : v.toFixed(digits);
}

function percent(fraction) {
  return fraction === null || fraction === undefined ?
      '' :
      (100 * fraction).toFixed(1) + '%';
}

function duration(seconds) {
  if (!(seconds > 0)) return '-';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + (s % 60) + 's';
}

function layerLabel(layer) {
  const name = layer.name === '' ? '' : layer.name + ' ';
  return '\u00a0'.repeat(2 * layer.depth) + name + layer.description;
}

function drawStatus(m) {
  document.title = m.title + ' - dive';
  $('title').textContent = m.title;
  $('state').textContent = m.state;
  $('state').className = m.state.startsWith('failed') ? 'warn' : '';
  $('epoch').textContent = m.epoch + ' / ' + m.epochs_total;
  $('step').textContent = String(m.global_step);
  $('lr').textContent = m.lr === null ? '-' : m.lr.toPrecision(4);
  $('rate').textContent = m.examples_per_sec > 0 ?
      Math.round(m.examples_per_sec).toLocaleString('en-US') :
      '-';
  $('eta').textContent = m.state === 'training' ? duration(m.eta_seconds) : '-';
}

function drawSteps(m) {
  if (m.full) {
    for (const points of [stepLoss, stepAcc, lossMax, lossMin]) {
      points.length = 0;
    }
    lastStep = -1;
    for (const [first, last, loss, acc, , min, max] of m.buckets) {
      const x = (first + last) / 2;
      stepLoss.push({x, y: loss});
      stepAcc.push({x, y: acc});
      lossMax.push({x, y: max});
      lossMin.push({x, y: min});
      lastStep = last;
    }
  }
  for (const [step, loss, acc] of m.steps) {
    stepLoss.push({x: step, y: loss});
    stepAcc.push({x: step, y: acc});
    lastStep = step;
  }
  if (m.full || m.steps.length > 0) stepChart.update();
  if (stepLoss.length > MAX_POINTS) lastStep = -1;  // the whole history next
}

function drawEpochs(m) {
  const data = epochChart.data;
  data.labels = m.epochs.map((e) => e.epoch);
  data.datasets[0].data = m.epochs.map((e) => e.loss);
  data.datasets[1].data = m.epochs.map((e) => e.train_acc);
  data.datasets[2].data = m.epochs.map((e) => e.test_acc);
  epochChart.update();
  // Formatted as train/training.cc writes metrics.csv.
  const body = $('epochs').tBodies[0];
  body.replaceChildren();
  for (const e of m.epochs) {
    const row = body.insertRow();
    cell(row, String(e.epoch));
    cell(row, fixed(e.loss, 6));
    cell(row, fixed(e.train_acc, 6));
    cell(row, fixed(e.test_acc, 6));
    cell(row, fixed(e.seconds, 3));
    cell(row, fixed(e.examples_per_sec, 1));
  }
  document.body.dataset.epochs = String(m.epochs.length);
}

function drawLayers(m) {
  // The bars: modules inside others are counted in their parents, so only
  // the leaves, each once, are drawn.
  const leaves = m.layers.filter(
      (l, i) => i + 1 >= m.layers.length || m.layers[i + 1].depth <= l.depth);
  layerChart.data.labels = leaves.map(layerLabel);
  layerChart.data.datasets[0].data = leaves.map((l) => l.forward_ms);
  layerChart.data.datasets[1].data = leaves.map((l) => l.backward_ms);
  layerChart.update();
  const body = $('layers').tBodies[0];
  body.replaceChildren();
  for (const l of m.layers) {
    const row = body.insertRow();
    cell(row, layerLabel(l));
    cell(row, l.sampled ? fixed(l.mean, 4) : '-');
    cell(row, l.sampled ? fixed(l.std, 4) : '-');
    // Zeros for ReLU, saturated units for Sigmoid and Tanh.
    const unit = l.unit_stat && l.sampled ?
        (100 * l.unit_fraction).toFixed(1) + '%' :
        '';
    // Half the units dead or saturated: the book's warning signs.
    cell(row, unit, l.unit_fraction > 0.5 && l.unit_stat ? 'warn' : '');
  }
  drawRoofline(m);
  $('layers-note').textContent = m.layers.length ?
      'Times over ' + m.layer_steps + ' training steps; statistics of the ' +
          'latest sampled step: zero outputs of ReLU (dead units), outputs ' +
          'of Sigmoid and Tanh past 0.99 of their range (saturated).' :
      'Per-layer numbers appear after the first training steps.';
}

// The numbers of --profile's table (train/layer_profiler.h), computed by
// the server: a module's include its submodules'.
function drawRoofline(m) {
  const body = $('roofline').tBodies[0];
  body.replaceChildren();
  for (const l of m.layers) {
    const row = body.insertRow();
    cell(row, layerLabel(l));
    cell(row, fixed(l.forward_ms, 2));
    cell(row, fixed(l.backward_ms, 2));
    cell(row, fixed(l.forward_gflops, 1));
    cell(row, fixed(l.backward_gflops, 1));
    cell(row, percent(l.fraction_of_peak));
    cell(row, percent(l.fraction_of_roof));
    cell(row, fixed(l.mb_per_step, 2));
    cell(row, fixed(l.flop_per_byte, 2));
    cell(row, l.bound || '', l.bound ? 'bound-' + l.bound : '');
  }
  const r = m.roofline;
  $('roofline-note').textContent = r ?
      'Roofline of ' + r.cpu + ': peak ' + r.peak_gflops.toFixed(1) +
          ' GFLOP/s (' + r.peak + ', ' + r.threads + ' threads), memory ' +
          r.bandwidth_gbs.toFixed(1) + ' GB/s (triad), ridge ' +
          r.ridge.toFixed(1) + ' FLOP/byte. A layer whose FLOP/byte is ' +
          'below the ridge is memory-bound: its roof is FLOP/byte x the ' +
          'bandwidth, not the peak. MB/step: the compulsory bytes its ' +
          'forward and backward move. Backward time is the autograd ' +
          'nodes each module created.' :
      'The roofline appears after the first training steps.';
}

function drawConfusion(m) {
  const table = $('confusion');
  const head = table.tHead, body = table.tBodies[0];
  head.replaceChildren();
  body.replaceChildren();
  if (m.confusion.length === 0) return;
  const names = (i) => m.classes[i] !== undefined ? m.classes[i] : String(i);
  const top = head.insertRow();
  cell(top, '');
  m.confusion[0].forEach((_, j) => cell(top, names(j)));
  m.confusion.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    const tr = body.insertRow();
    cell(tr, names(i));
    row.forEach((count, j) => {
      const td = cell(tr, String(count));
      const share = count / total;
      // Blue on the diagonal (right), red off it (wrong).
      td.style.backgroundColor = i === j ?
          `rgba(31, 119, 180, ${share.toFixed(3)})` :
          `rgba(214, 39, 40, ${Math.min(1, 3 * share).toFixed(3)})`;
      if (share > 0.5) td.style.color = '#fff';
    });
  });
}

async function poll() {
  try {
    const response =
        await fetch('/api/metrics?since=' + lastStep, {cache: 'no-store'});
    if (!response.ok) throw new Error('HTTP ' + response.status);
    const m = await response.json();
    drawStatus(m);
    drawSteps(m);
    drawEpochs(m);
    drawLayers(m);
    drawConfusion(m);
    document.body.dataset.state = m.state;
    if (m.state !== 'training') return;  // nothing more will change
  } catch (e) {
    // The trainer has exited (or not started yet): keep what is drawn.
    $('state').textContent = 'disconnected (' + e.message + ')';
    document.body.dataset.state = 'disconnected';
  }
  setTimeout(poll, POLL_MS);
}

poll();
