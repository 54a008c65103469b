package events

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus collectors of publishers and consumers. Several publishers and
// consumers may share one Registerer: collectors registered already are reused.
type metrics struct {
	published     *prometheus.CounterVec // topic
	publishErrors *prometheus.CounterVec // topic
	consumed      *prometheus.CounterVec // topic, group
	handled       *prometheus.CounterVec // topic, group
	duplicates    *prometheus.CounterVec // topic, group
	handlerErrors *prometheus.CounterVec // topic, group
	deadLettered  *prometheus.CounterVec // topic, group, reason
	lag           *prometheus.GaugeVec   // topic, group, partition
}

func newMetrics(reg prometheus.Registerer) *metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pulse", Subsystem: "events", Name: name, Help: help}, labels)
		return register(reg, c)
	}
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pulse", Subsystem: "events", Name: "consumer_lag",
		Help: "Records behind the partition's high watermark after the last fetch."}, []string{"topic", "group", "partition"})
	return &metrics{
		published:     counter("published_total", "Events acknowledged by the broker.", "topic"),
		publishErrors: counter("publish_errors_total", "Events the broker did not acknowledge.", "topic"),
		consumed:      counter("consumed_total", "Records fetched by consumers.", "topic", "group"),
		handled:       counter("handled_total", "Events whose handler succeeded.", "topic", "group"),
		duplicates:    counter("duplicates_total", "Events skipped because their id was seen already.", "topic", "group"),
		handlerErrors: counter("handler_errors_total", "Failed handler attempts (each retry counts).", "topic", "group"),
		deadLettered:  counter("dead_lettered_total", "Records sent to the dead-letter topic, by reason (malformed, handler).", "topic", "group", "reason"),
		lag:           register(reg, gauge),
	}
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A conflicting collector of another shape: keep counting, unexported.
	}
	return c
}
