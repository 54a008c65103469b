package events

import (
	"encoding/json"
	"strings"
)

// typeInfo documents each event type in the AsyncAPI document: who sends it and why, and, when
// not the subject (else the id), what the record key is.
var typeInfo = map[string]struct{ summary, sender, receiver, key string }{
	TypeIngestRecord:   {"A record (and, when known, its label) for a dataset.", "data sources", "pulse (ingest consumer)", ""},
	TypeTrainRequested: {"Asks for a new model version; enqueued as a training job.", "clients, schedules", "pulse (train consumer)", ""},
	TypeScoreRequested: {"Asks to score inputs (the body of a REST predict request) with a model; answered by one score.completed event.", "clients", "pulse (score consumer, group pulse-score)",
		"the producer's choice: key by device or patient id so that one device's requests, and their results, keep their order"},
	TypeScoreCompleted: {"The answer to a score request: the REST predict response plus request_id and correlation_id, or an error (RFC 9457 members). At least once: drop repeated request_ids.", "pulse", "clients",
		"the key of the request it answers"},
	TypeFeedback:               {"The observed outcome of an earlier prediction.", "clinical systems", "pulse (feedback consumer)", ""},
	TypeModelVersionRegistered: {"A new model version was trained and stored.", "pulse", "anyone", ""},
	TypeModelAliasMoved:        {"A model alias now points at another version.", "pulse", "anyone", ""},
	TypeModelDecision:          {"An entry of a model's audit trail: what its policy decided (a rollback, a retraining, a promotion, or none and the guard that stopped it), with the numbers.", "pulse (continuous evaluation)", "anyone", ""},
	TypeJobStarted:             {"A background job attempt started.", "pulse workers", "anyone", ""},
	TypeJobSucceeded:           {"A background job finished.", "pulse workers", "anyone", ""},
	TypeJobFailed:              {"A background job attempt failed.", "pulse workers", "anyone", ""},
}

// messageName turns "com.cloudmedical.pulse.model.version_registered" into
// "modelVersionRegistered", an AsyncAPI component key.
func messageName(typ string) string {
	parts := strings.FieldsFunc(strings.TrimPrefix(typ, typePrefix), func(r rune) bool { return r == '.' || r == '_' })
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
	}
	return strings.Join(parts, "")
}

func channelName(base string) string { return messageName(typePrefix + base) }

// AsyncAPI returns the AsyncAPI 3.0 document of Pulse's events for the topics t: one channel
// per topic and per dead-letter topic, send and receive operations, and for each event type
// a message whose payload is the CloudEvents envelope with the type's JSON Schema as data.
// server is the broker address to show (e.g. "localhost:9092").
func AsyncAPI(t Topics, server string) []byte {
	schemasC := map[string]any{}
	messages := map[string]any{}
	channels := map[string]any{}
	operations := map[string]any{}
	schemasC["CloudEvent"] = cloudEventSchema()
	schemasC["DeadLetter"] = deadLetterSchema()
	for _, typ := range Types() {
		name := messageName(typ)
		var data any
		_ = json.Unmarshal(schemas[typ].raw, &data) // compiled at init: valid JSON
		if m, ok := data.(map[string]any); ok {
			delete(m, "$schema") // AsyncAPI schemas are their own dialect (a JSON Schema superset)
		}
		schemasC[name+"Data"] = data
		info := typeInfo[typ]
		key := info.key
		if key == "" {
			key = "the event's subject, else its id"
		}
		headers := map[string]any{"content-type": map[string]any{"type": "string", "const": ContentTypeCloud}}
		if typ == TypeScoreCompleted {
			headers[HeaderCorrelationID] = map[string]any{"type": "string", "description": "the request's correlation_id, when it had one"}
		}
		messages[name] = map[string]any{
			"name":        typ,
			"title":       typ,
			"summary":     info.summary,
			"contentType": ContentTypeCloud,
			"headers":     map[string]any{"type": "object", "properties": headers},
			"bindings": map[string]any{"kafka": map[string]any{
				"key":            map[string]any{"type": "string", "description": key},
				"bindingVersion": "0.5.0",
			}},
			"payload": map[string]any{
				"allOf": []any{
					map[string]any{"$ref": "#/components/schemas/CloudEvent"},
					map[string]any{"type": "object", "properties": map[string]any{
						"type":       map[string]any{"const": typ},
						"dataschema": map[string]any{"const": schemas[typ].id},
						"data":       map[string]any{"$ref": "#/components/schemas/" + name + "Data"},
					}},
				},
			},
			"x-sender":   info.sender,
			"x-receiver": info.receiver,
		}
	}
	messages["deadLetter"] = map[string]any{
		"name":        "dead-letter",
		"title":       "Dead letter",
		"summary":     "A record a consumer could not process, with the reason; its offset was committed.",
		"contentType": ContentTypeJSON,
		"headers": map[string]any{"type": "object", "properties": map[string]any{
			HeaderDLQReason: map[string]any{"type": "string", "enum": []string{ReasonMalformed, ReasonRejected, ReasonHandler}},
			HeaderDLQError:  map[string]any{"type": "string"},
		}},
		"payload": map[string]any{"$ref": "#/components/schemas/DeadLetter"},
	}
	for _, base := range BaseTopics() {
		ch := channelName(base)
		msgs := map[string]any{}
		var refs []any
		for _, typ := range Types() {
			if typeTopic[typ] != base {
				continue
			}
			name := messageName(typ)
			msgs[name] = map[string]any{"$ref": "#/components/messages/" + name}
			refs = append(refs, map[string]any{"$ref": "#/channels/" + ch + "/messages/" + name})
		}
		channels[ch] = map[string]any{
			"address":     t.Name(base),
			"description": "Kafka topic " + t.Name(base) + "; malformed records go to " + DLQTopic(t.Name(base)) + ".",
			"messages":    msgs,
		}
		channels[ch+"Dlq"] = map[string]any{
			"address":     DLQTopic(t.Name(base)),
			"description": "Dead-letter topic of " + t.Name(base) + ".",
			"messages":    map[string]any{"deadLetter": map[string]any{"$ref": "#/components/messages/deadLetter"}},
		}
		for _, action := range []string{"send", "receive"} {
			operations[action+strings.ToUpper(ch[:1])+ch[1:]] = map[string]any{
				"action":   action,
				"channel":  map[string]any{"$ref": "#/channels/" + ch},
				"messages": refs,
			}
		}
		operations["receive"+strings.ToUpper(ch[:1])+ch[1:]+"Dlq"] = map[string]any{
			"action":   "receive",
			"channel":  map[string]any{"$ref": "#/channels/" + ch + "Dlq"},
			"messages": []any{map[string]any{"$ref": "#/channels/" + ch + "Dlq/messages/deadLetter"}},
		}
	}
	doc := map[string]any{
		"asyncapi": "3.0.0",
		"info": map[string]any{
			"title":   "Pulse events",
			"version": "1.0.0",
			"description": "Pulse's Kafka topics. Every message is a CloudEvents 1.0 event in structured JSON mode " +
				"(the record value is the whole event; datacontenttype application/json). Consumers commit offsets " +
				"only after the event's effect is durable and send malformed records to the topic's .dlq topic; the " +
				"ingest and train consumers ignore event ids they have processed, the score consumer answers every " +
				"delivery (clients drop repeated request_ids).",
		},
		"defaultContentType": ContentTypeCloud,
		"servers": map[string]any{
			"kafka": map[string]any{"host": server, "protocol": "kafka", "description": "Kafka brokers (the embedded broker of pulse serve, or a cluster)"},
		},
		"channels":   channels,
		"operations": operations,
		"components": map[string]any{"messages": messages, "schemas": schemasC},
	}
	b, _ := json.MarshalIndent(doc, "", "  ") // maps of JSON values only: cannot fail
	return b
}

func cloudEventSchema() map[string]any {
	str := map[string]any{"type": "string", "minLength": 1}
	return map[string]any{
		"type":        "object",
		"description": "CloudEvents 1.0 envelope, JSON format.",
		"required":    []string{"specversion", "id", "source", "type", "data"},
		"properties": map[string]any{
			"specversion":     map[string]any{"const": SpecVersion},
			"id":              str,
			"source":          map[string]any{"type": "string", "format": "uri-reference", "minLength": 1},
			"type":            str,
			"subject":         map[string]any{"type": "string"},
			"time":            map[string]any{"type": "string", "format": "date-time"},
			"datacontenttype": map[string]any{"const": ContentTypeJSON},
			"dataschema":      map[string]any{"type": "string", "format": "uri"},
			"data":            map[string]any{"type": "object"},
		},
	}
}

func deadLetterSchema() map[string]any {
	s := map[string]any{"type": "string"}
	i := map[string]any{"type": "integer"}
	return map[string]any{
		"type":     "object",
		"required": []string{"reason", "error", "attempts", "group", "topic", "partition", "offset", "failed_at"},
		"properties": map[string]any{
			"reason":       map[string]any{"type": "string", "enum": []string{ReasonMalformed, ReasonRejected, ReasonHandler}},
			"error":        s,
			"field":        s,
			"attempts":     i,
			"group":        s,
			"topic":        s,
			"partition":    i,
			"offset":       i,
			"key":          s,
			"event_id":     s,
			"value":        map[string]any{"type": "string", "description": "the original record value (UTF-8)"},
			"value_base64": map[string]any{"type": "string", "contentEncoding": "base64"},
			"failed_at":    map[string]any{"type": "string", "format": "date-time"},
		},
	}
}
