package lake

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the lake's Prometheus collectors. The WAL adds its own, labelled wal="lake":
// pulse_wal_fsync_batches_total, pulse_wal_batch_records, pulse_wal_append_seconds and
// pulse_wal_segments_pending (sealed segments waiting for compaction).
type metrics struct {
	reg               prometheus.Registerer
	collectors        []prometheus.Collector
	appended          *prometheus.CounterVec
	compacted         prometheus.Counter
	objects           prometheus.Counter
	compactionErrors  prometheus.Counter
	compactionSeconds prometheus.Histogram
	// the join (join.go)
	dateListings  prometheus.Counter
	footersRead   prometheus.Counter
	rowGroupsRead prometheus.Counter
	joinCacheHits prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	table := prometheus.Labels{"table": "predictions"}
	m := &metrics{
		reg: reg,
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_lake_records_appended_total", Help: "Records made durable in the lake's WAL, by table."}, []string{"table"}),
		compacted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_lake_records_compacted_total", Help: "Records written to Parquet objects by compaction.", ConstLabels: table}),
		objects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_lake_objects_written_total", Help: "Parquet objects written and synced by compaction.", ConstLabels: table}),
		compactionErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_lake_compaction_errors_total", Help: "Failed background compactions (each is retried with backoff)."}),
		compactionSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pulse_lake_compaction_seconds", Help: "Duration of the compaction of one WAL segment.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}),
	}
	m.dateListings = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pulse_lake_join_date_listings_total", Help: "Date partitions listed by the join (once per table and date, then kept up to date)."})
	m.footersRead = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pulse_lake_join_footers_read_total", Help: "Parquet footers read by the join (once per object)."})
	m.rowGroupsRead = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pulse_lake_join_row_groups_read_total", Help: "Row groups whose join columns were read and decoded (cache misses)."})
	m.joinCacheHits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pulse_lake_join_cache_hits_total", Help: "Row groups the join found decoded in its cache."})
	m.collectors = []prometheus.Collector{m.appended, m.compacted, m.objects, m.compactionErrors, m.compactionSeconds,
		m.dateListings, m.footersRead, m.rowGroupsRead, m.joinCacheHits}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, c := range m.collectors[:i] {
				reg.Unregister(c)
			}
			return nil, fmt.Errorf("lake: register metrics: %w", err)
		}
	}
	return m, nil
}

// unregister removes the collectors, so that a Lake can be opened again on the same registry.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
