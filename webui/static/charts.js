"use strict";
// Time-series charts on Chart.js (global `Chart`, vendor/chart.umd.min.js). The x axis is linear in
// epoch milliseconds with a tick callback printing plant time, so no date adapter is needed.
// Each chart holds: the values, an optional min/max band (aggregated series), the threshold limits
// as dashed lines with a light band between them, and alarm marks (a point at the alarm's value and
// a dashed vertical line at its time). Animations are off: 10 charts of 1500 points must stay fast.
window.PlantCharts = (() => {
  const COLORS = {
    line: "#1f5fa8", band: "rgba(31, 95, 168, 0.16)", limit: "#b86e00", inside: "rgba(27, 127, 59, 0.07)",
    alarm: "#b3261e", grid: "rgba(0, 0, 0, 0.07)",
  };
  const MIN = 0, MAX = 1, VALUE = 2, LOW = 3, HIGH = 4, ALARMS = 5;
  const MINUTE = 60e3, HOUR = 3600e3, DAY = 86400e3;
  const STEPS = [MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR,
    3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];

  // Plant time (window.Plant.formatTime, the pages' one formatter, in the page's language); the zone
  // is in the page header. Within a day "20:25", beyond it "1 déc. 20:25".
  function tickLabel(ms, span) {
    return span <= 26 * HOUR
      ? window.Plant.formatTime(ms, { date: false, seconds: false, zone: false })
      : window.Plant.formatTime(ms, { year: false, seconds: false, zone: false });
  }

  // Ticks on whole plant-time minutes/hours/days (Chart.js would start them at the window's first millisecond).
  function alignedTicks(min, max, step) {
    const offset = window.Plant.zoneOffset(min); // plant time = UTC + offset
    const ticks = [];
    for (let t = Math.ceil((min + offset) / step) * step - offset; t <= max && ticks.length < 100; t += step) {
      ticks.push({ value: t });
    }
    return ticks;
  }

  // Dashed vertical lines at the alarm marks (the points alone are easy to miss).
  const alarmLines = {
    id: "alarmLines",
    afterDatasetsDraw(chart) {
      const marks = chart.data.datasets[ALARMS];
      if (!marks || !marks.data.length) return;
      const { ctx, chartArea, scales } = chart;
      ctx.save();
      ctx.strokeStyle = COLORS.alarm;
      ctx.lineWidth = 1;
      ctx.setLineDash([4, 3]);
      for (const p of marks.data) {
        const x = scales.x.getPixelForValue(p.x);
        if (x < chartArea.left || x > chartArea.right) continue;
        ctx.beginPath();
        ctx.moveTo(x, chartArea.top);
        ctx.lineTo(x, chartArea.bottom);
        ctx.stroke();
      }
      ctx.restore();
    },
  };

  class TimeChart {
    constructor(canvas, { label, decimals = 2, unit = "" }) {
      this.canvas = canvas;
      this.decimals = decimals;
      this.unit = unit;
      this.low = null;
      this.high = null;
      this.start = 0;
      this.end = 0;
      this.step = HOUR;
      this.aggregated = false;
      const flat = { pointRadius: 0, pointHitRadius: 0, borderWidth: 0 };
      this.chart = new Chart(canvas, {
        type: "line",
        data: {
          datasets: [
            { label: "min", data: [], ...flat, fill: false, order: 3 },
            { label: "max", data: [], ...flat, fill: "-1", backgroundColor: COLORS.band, order: 3 },
            { label, data: [], borderColor: COLORS.line, backgroundColor: COLORS.line, borderWidth: 1.5,
              pointRadius: 0, pointHoverRadius: 3, order: 1 },
            { label: _("low limit"), data: [], ...flat, borderWidth: 1.5, borderColor: COLORS.limit,
              borderDash: [6, 4], fill: false, order: 2 },
            { label: _("high limit"), data: [], ...flat, borderWidth: 1.5, borderColor: COLORS.limit,
              borderDash: [6, 4], fill: false, backgroundColor: COLORS.inside, order: 2 },
            { label: _("alarm"), data: [], showLine: false, pointStyle: "triangle", pointRadius: 6,
              pointHoverRadius: 8, borderColor: COLORS.alarm, backgroundColor: COLORS.alarm, order: 0 },
          ],
        },
        options: {
          animation: false,
          parsing: false,
          normalized: true,
          responsive: true,
          maintainAspectRatio: false,
          interaction: { mode: "nearest", axis: "x", intersect: false },
          plugins: {
            legend: { display: false },
            tooltip: {
              filter: (item) => item.datasetIndex === VALUE || item.datasetIndex === ALARMS,
              callbacks: {
                title: (items) => (items.length ? window.Plant.formatTime(items[0].parsed.x) : ""),
                label: (item) => {
                  const v = window.Plant.num(item.parsed.y, this.decimals);
                  const what = item.datasetIndex === ALARMS ? _("alarm {text}", { text: item.raw.text || "" }).trim()
                    : item.dataset.label;
                  return `${what}: ${v}${this.unit ? ` ${this.unit}` : ""}`;
                },
              },
            },
          },
          scales: {
            x: {
              type: "linear",
              afterBuildTicks: (scale) => {
                if (this.end > this.start) scale.ticks = alignedTicks(this.start, this.end, this.step);
              },
              grid: { color: COLORS.grid },
              ticks: {
                maxRotation: 0,
                autoSkip: true,
                includeBounds: false,
                callback: (value) => tickLabel(value, this.end - this.start),
              },
            },
            y: { grace: "5%", grid: { color: COLORS.grid },
              ticks: { callback: (value) => new Intl.NumberFormat(INTL_LOCALE).format(Number(value)) } },
          },
        },
        plugins: [alarmLines],
      });
    }

    get values() {
      return this.chart.data.datasets[VALUE].data;
    }

    // Replace everything: t (epoch ms), v, and min/max when the series is aggregated (else null).
    setSeries(t, v, min, max) {
      const ds = this.chart.data.datasets;
      const points = (ys) => {
        const out = [];
        for (let i = 0; i < t.length; i++) if (ys[i] !== null && ys[i] !== undefined) out.push({ x: t[i], y: ys[i] });
        return out;
      };
      this.aggregated = Boolean(min && max);
      ds[VALUE].data = points(v || []);
      ds[MIN].data = this.aggregated ? points(min) : [];
      ds[MAX].data = this.aggregated ? points(max) : [];
    }

    setLimits(low, high) {
      this.low = low ?? null;
      this.high = high ?? null;
      this._limitLines();
    }

    setRange(start, end) {
      this.start = start;
      this.end = end;
      const x = this.chart.options.scales.x;
      x.min = start;
      x.max = end;
      // Steps on whole minutes/hours/days, at most ~4 ticks on a phone and ~8 on a wide chart.
      const wanted = (this.canvas.clientWidth || 600) < 420 ? 4 : 8;
      this.step = STEPS.find((s) => (end - start) / s <= wanted) || STEPS[STEPS.length - 1];
      this._limitLines();
    }

    // marks: [{x: epoch ms, y: value, text}]
    setAlarms(marks) {
      this.chart.data.datasets[ALARMS].data = marks.slice().sort((a, b) => a.x - b.x);
    }

    addAlarm(mark) {
      const data = this.chart.data.datasets[ALARMS].data;
      if (data.some((p) => p.x === mark.x)) return;
      data.push(mark);
      data.sort((a, b) => a.x - b.x);
    }

    // A live point (timestamps arrive in order; an older or repeated one is ignored).
    append(x, y) {
      const data = this.values;
      if (y === null || y === undefined || (data.length && data[data.length - 1].x >= x)) return;
      data.push({ x, y });
      if (this.aggregated) {
        this.chart.data.datasets[MIN].data.push({ x, y });
        this.chart.data.datasets[MAX].data.push({ x, y });
      }
    }

    dropBefore(cutoff) {
      for (const index of [MIN, MAX, VALUE, ALARMS]) {
        const ds = this.chart.data.datasets[index];
        let i = 0;
        while (i < ds.data.length && ds.data[i].x < cutoff) i++;
        if (i) ds.data.splice(0, i);
      }
    }

    lastX() {
      const data = this.values;
      return data.length ? data[data.length - 1].x : null;
    }

    update() {
      const ds = this.chart.data.datasets[VALUE];
      ds.pointRadius = ds.data.length <= 120 ? 2 : 0; // dots only where they can be told apart
      this.chart.update("none");
      this.canvas.dataset.points = String(ds.data.length);
    }

    _limitLines() {
      const ds = this.chart.data.datasets;
      const line = (y) => (y === null || !this.end ? [] : [{ x: this.start, y }, { x: this.end, y }]);
      ds[LOW].data = line(this.low);
      ds[HIGH].data = line(this.high);
      ds[HIGH].fill = this.low !== null && this.high !== null ? "-1" : false; // the normal band
    }
  }

  return { TimeChart, tickLabel, HOUR, DAY };
})();
