package events

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Documented event types. Each has a JSON Schema for its data in schemas/<suffix>.json (the
// type without the "com.cloudmedical.pulse." prefix) and a home topic.
const (
	TypeIngestRecord           = "com.cloudmedical.pulse.ingest.record"
	TypeTrainRequested         = "com.cloudmedical.pulse.train.requested"
	TypeScoreRequested         = "com.cloudmedical.pulse.score.requested"
	TypeScoreCompleted         = "com.cloudmedical.pulse.score.completed"
	TypeFeedback               = "com.cloudmedical.pulse.feedback"
	TypeModelVersionRegistered = "com.cloudmedical.pulse.model.version_registered"
	TypeModelAliasMoved        = "com.cloudmedical.pulse.model.alias_moved"
	TypeModelDecision          = "com.cloudmedical.pulse.model.decision"
	TypeJobStarted             = "com.cloudmedical.pulse.job.started"
	TypeJobSucceeded           = "com.cloudmedical.pulse.job.succeeded"
	TypeJobFailed              = "com.cloudmedical.pulse.job.failed"
)

const typePrefix = "com.cloudmedical.pulse."

// Topic names without the configured prefix (see Topics).
const (
	TopicIngest         = "ingest"
	TopicTrainRequests  = "train.requests"
	TopicScoreRequests  = "score.requests"
	TopicScoreResults   = "score.results"
	TopicFeedback       = "feedback"
	TopicModelEvents    = "model.events"
	DeadLetterSuffix    = ".dlq"
	defaultTopicsPrefix = "pulse."
)

// typeTopic maps each type to the topic it is published on.
var typeTopic = map[string]string{
	TypeIngestRecord:           TopicIngest,
	TypeTrainRequested:         TopicTrainRequests,
	TypeScoreRequested:         TopicScoreRequests,
	TypeScoreCompleted:         TopicScoreResults,
	TypeFeedback:               TopicFeedback,
	TypeModelVersionRegistered: TopicModelEvents,
	TypeModelAliasMoved:        TopicModelEvents,
	TypeModelDecision:          TopicModelEvents,
	TypeJobStarted:             TopicModelEvents,
	TypeJobSucceeded:           TopicModelEvents,
	TypeJobFailed:              TopicModelEvents,
}

// Types returns the documented event types, sorted.
func Types() []string {
	ts := make([]string, 0, len(typeTopic))
	for t := range typeTopic {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// BaseTopics returns the unprefixed topic names, in a fixed order.
func BaseTopics() []string {
	return []string{TopicIngest, TopicTrainRequests, TopicScoreRequests, TopicScoreResults, TopicFeedback, TopicModelEvents}
}

// TopicOf returns the unprefixed topic an event type is published on, or "" for an unknown type.
func TopicOf(typ string) string { return typeTopic[typ] }

// Topics names Pulse's topics under a prefix (kafka.Config.TopicPrefix, "pulse." by default).
type Topics struct {
	Prefix string
}

// Name returns the full name of a base topic such as TopicIngest.
func (t Topics) Name(base string) string { return t.Prefix + base }

// For returns the full topic name of an event type, or "" for an unknown type.
func (t Topics) For(typ string) string {
	base, ok := typeTopic[typ]
	if !ok {
		return ""
	}
	return t.Prefix + base
}

// DLQTopic returns the dead-letter topic of a full topic name.
func DLQTopic(topic string) string { return topic + DeadLetterSuffix }

// All returns every full topic name, each followed by its dead-letter topic: the list to
// pass to kafka.EnsureTopics.
func (t Topics) All() []string {
	var names []string
	for _, b := range BaseTopics() {
		names = append(names, t.Name(b), DLQTopic(t.Name(b)))
	}
	return names
}

//go:embed schemas/*.json
var schemaFS embed.FS

type typeSchema struct {
	id     string          // the schema's $id
	raw    json.RawMessage // the schema document
	schema *jsonschema.Schema
}

// schemas is compiled once at init from the embedded files; a broken schema is a bug of
// this package and caught by its tests (init fails loudly).
var schemas = mustCompileSchemas()

func mustCompileSchemas() map[string]*typeSchema {
	out := make(map[string]*typeSchema, len(typeTopic))
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for typ := range typeTopic {
		name := "schemas/" + strings.TrimPrefix(typ, typePrefix) + ".json"
		raw, err := schemaFS.ReadFile(name)
		if err != nil {
			panic(fmt.Sprintf("events: missing schema %s: %v", name, err))
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			panic(fmt.Sprintf("events: schema %s: %v", name, err))
		}
		id, _ := doc.(map[string]any)["$id"].(string)
		if id == "" {
			panic(fmt.Sprintf("events: schema %s has no $id", name))
		}
		if err := c.AddResource(id, doc); err != nil {
			panic(fmt.Sprintf("events: schema %s: %v", name, err))
		}
		out[typ] = &typeSchema{id: id, raw: raw}
	}
	for typ, s := range out {
		sch, err := c.Compile(s.id)
		if err != nil {
			panic(fmt.Sprintf("events: compile schema of %s: %v", typ, err))
		}
		s.schema = sch
	}
	return out
}

// Schema returns the JSON Schema document of an event type's data, or nil for an unknown type.
func Schema(typ string) json.RawMessage {
	s, ok := schemas[typ]
	if !ok {
		return nil
	}
	return slices.Clone(s.raw)
}

// validate checks data against the schema; the error names the first failing location as
// "data/<json pointer>".
func (s *typeSchema) validate(data json.RawMessage) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "data", "attribute \"data\": not valid JSON: %v", err)
	}
	err = s.schema.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "data", "attribute \"data\": %v", err)
	}
	// The deepest first cause says most precisely what is wrong.
	leaf := ve
	for len(leaf.Causes) > 0 {
		leaf = leaf.Causes[0]
	}
	field := "data"
	if len(leaf.InstanceLocation) > 0 {
		field += "/" + strings.Join(leaf.InstanceLocation, "/")
	}
	msg := leafMessage(leaf)
	return pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "%s: %s (schema %s)", field, msg, s.id)
}

func leafMessage(ve *jsonschema.ValidationError) string {
	out := ve.BasicOutput()
	if out.Error != nil {
		return out.Error.String()
	}
	for _, u := range out.Errors {
		if u.Error != nil {
			return u.Error.String()
		}
	}
	return ve.Error()
}
