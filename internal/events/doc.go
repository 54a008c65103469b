// Package events holds Pulse's event backbone on Kafka: the CloudEvents 1.0 envelope (JSON,
// structured mode), the documented event types with JSON Schemas for their data, topic
// names, the AsyncAPI document, a batching Publisher and a Consumer framework that commits
// offsets only after the handler's effect is durable, filters duplicates by event id, and
// sends malformed messages to a dead-letter topic with the reason.
//
// # Messages
//
// Every Kafka record value is one CloudEvents 1.0 event in JSON (structured mode, header
// content-type: application/cloudevents+json):
//
//	{"specversion": "1.0", "id": "0193…", "source": "/pulse/api", "type": "com.cloudmedical.pulse.feedback",
//	 "subject": "heart-alert", "time": "2026-11-25T18:00:00Z", "datacontenttype": "application/json",
//	 "dataschema": "https://schemas.cloudmedical.com/pulse/events/feedback.json",
//	 "data": {"prediction_id": "p-1", "label": 1, "observed_at": "2026-11-30T09:00:00Z"}}
//
// The record key is the subject (or the id when there is none), so events about one model
// keep their order. specversion, id, source, type and data are required; data must match
// the JSON Schema of the type (schemas/*.json, also in the AsyncAPI document).
//
// # Types and topics (under the prefix, "pulse." by default)
//
//	type (com.cloudmedical.pulse.…)  topic           data
//	ingest.record                    ingest          dataset, record {column: value}, label?
//	train.requested                  train.requests  model + the body of POST /v1/models/{model}/train
//	score.requested                  score.requests  model, version? | alias?, strict?, correlation_id?, inputs (a REST predict body)
//	score.completed                  score.results   the REST predict response + request_id, correlation_id? | request_id, error
//	feedback                         feedback        prediction_id, label, observed_at
//	model.version_registered         model.events    model, version, algorithm?, dataset?, trigger?, metrics?
//	model.alias_moved                model.events    model, alias, version, previous_version?
//	model.decision                   model.events    id, model, rule, action, champion, policy_version, reason, numbers, at, version?, guard?, result?, error?, job_id?
//	job.started                      model.events    job_id, kind, attempt, model?, request_id?
//	job.succeeded                    model.events    job_id, kind, attempt, result?
//	job.failed                       model.events    job_id, kind, attempt, error, final?
//
// Each topic T has a dead-letter topic T.dlq whose records are DeadLetter JSON values with
// the original record and the reason (also in the pulse-dlq-reason header).
//
// # Delivery
//
// Consumers are at-least-once with an idempotency filter: the offset of a record is
// committed only after its handler returned nil (or it was dead-lettered with the broker's
// ack); a redelivered event whose id the Seen filter knows is skipped. Producers may retry,
// so handlers must tolerate duplicates the filter has forgotten.
//
// # Asynchronous scoring
//
// ScoreConsumer answers score requests in batches: it decodes them (DecodeScoreRequest, a
// fast path with the schema's rules checked by hand), scores them with one call (which stores
// every scored record in the lake), produces one result per request with the request's key
// and waits for the broker's acks, and only then commits. A request that cannot be scored is
// answered with an error result; a malformed one is dead-lettered. It keeps no Seen filter:
// a redelivered request is answered again, with a new prediction id, and clients drop
// repeated request_ids.
package events
