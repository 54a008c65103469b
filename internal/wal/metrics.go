package wal

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus collectors of one WAL, labelled wal=<Config.Name>.
type metrics struct {
	reg           prometheus.Registerer
	collectors    []prometheus.Collector
	records       prometheus.Counter
	batches       prometheus.Counter
	segments      prometheus.Counter
	failures      prometheus.Counter
	sealed        prometheus.Gauge
	batchRecords  prometheus.Histogram
	appendSeconds prometheus.Histogram
	fsyncSeconds  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, name string) (*metrics, error) {
	labels := prometheus.Labels{"wal": name}
	latency := []float64{50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 750e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1}
	m := &metrics{
		reg: reg,
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_wal_records_total", Help: "Records written and fsynced to the write-ahead log.", ConstLabels: labels}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_wal_fsync_batches_total", Help: "Group commits: batches written with one write and one fsync.", ConstLabels: labels}),
		segments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_wal_segments_sealed_total", Help: "Segments sealed since start.", ConstLabels: labels}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_wal_write_failures_total", Help: "Failed writes or fsyncs; each stops the log until restart.", ConstLabels: labels}),
		sealed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pulse_wal_segments_pending", Help: "Sealed segments not yet consumed and removed.", ConstLabels: labels}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pulse_wal_batch_records", Help: "Records per group commit.", ConstLabels: labels,
			Buckets: prometheus.ExponentialBuckets(1, 2, 13)}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pulse_wal_append_seconds", Help: "Latency of Append until the records are durable.", ConstLabels: labels,
			Buckets: latency}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pulse_wal_fsync_seconds", Help: "Duration of the write and fsync of one group commit.", ConstLabels: labels,
			Buckets: latency}),
	}
	m.collectors = []prometheus.Collector{m.records, m.batches, m.segments, m.failures, m.sealed, m.batchRecords, m.appendSeconds, m.fsyncSeconds}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, c := range m.collectors[:i] {
				reg.Unregister(c)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("wal: metrics of wal %q are already registered; give each WAL its own Name: %w", name, err)
			}
			return nil, fmt.Errorf("wal: register metrics: %w", err)
		}
	}
	return m, nil
}

// unregister removes the collectors, so that a WAL of the same name can be opened again.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
