package e2e

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// apiDoc validates real responses against the OpenAPI document the server publishes.
type apiDoc struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	cache    map[string]*jsonschema.Schema
	checked  map[string]bool
}

func loadAPIDoc(t *testing.T, raw []byte) *apiDoc {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource("openapi.json", doc); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m["openapi"] != "3.1.0" {
		t.Fatalf("openapi: got %v, want 3.1.0", m["openapi"])
	}
	return &apiDoc{doc: m, compiler: c, cache: map[string]*jsonschema.Schema{}, checked: map[string]bool{}}
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// check validates a response to method route (an OpenAPI path template) against the
// document: the status must be documented and the body must match its schema.
func (a *apiDoc) check(t *testing.T, method, route string, r response) {
	t.Helper()
	op, ok := a.doc["paths"].(map[string]any)[route].(map[string]any)[strings.ToLower(method)].(map[string]any)
	if !ok {
		t.Fatalf("openapi: %s %s is not documented", method, route)
	}
	status := strconv.Itoa(r.status)
	resp, ok := op["responses"].(map[string]any)[status].(map[string]any)
	if !ok && r.status >= 500 {
		resp, ok = op["responses"].(map[string]any)["default"].(map[string]any)
	}
	if !ok {
		t.Fatalf("openapi: %s %s: status %d is not documented (body %s)", method, route, r.status, r.body)
	}
	if _, listed := op["responses"].(map[string]any)[status]; !listed {
		status = "default"
	}
	ptr := "/paths/" + escapePointer(route) + "/" + strings.ToLower(method) + "/responses/" + status
	if ref, ok := resp["$ref"].(string); ok {
		ptr = strings.TrimPrefix(ref, "#")
		resp = a.doc["components"].(map[string]any)["responses"].(map[string]any)[strings.TrimPrefix(ref, "#/components/responses/")].(map[string]any)
	}
	a.checked[method+" "+route] = true
	content, ok := resp["content"].(map[string]any)
	if !ok {
		if len(bytes.TrimSpace(r.body)) != 0 {
			t.Fatalf("openapi: %s %s %d documents no body, got %s", method, route, r.status, r.body)
		}
		return
	}
	ct := strings.TrimSpace(strings.Split(r.header.Get("Content-Type"), ";")[0])
	if _, ok := content[ct]; !ok {
		t.Fatalf("openapi: %s %s %d: content type %q is not documented", method, route, r.status, ct)
	}
	if ct == "text/plain" {
		return
	}
	loc := "openapi.json#" + ptr + "/content/" + escapePointer(ct) + "/schema"
	sch, ok := a.cache[loc]
	if !ok {
		var err error
		sch, err = a.compiler.Compile(loc)
		if err != nil {
			t.Fatalf("openapi: compile %s: %v", loc, err)
		}
		a.cache[loc] = sch
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", method, route, err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("openapi: %s %s %d: body does not match the documented schema: %v\nbody: %s", method, route, r.status, err, r.body)
	}
}

// coverage fails unless every documented operation was checked at least once.
func (a *apiDoc) coverage(t *testing.T) {
	t.Helper()
	for route, ops := range a.doc["paths"].(map[string]any) {
		for method := range ops.(map[string]any) {
			key := strings.ToUpper(method) + " " + route
			if !a.checked[key] {
				t.Errorf("openapi: %s was never checked against a real response", key)
			}
		}
	}
}
