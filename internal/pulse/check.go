package pulse

import (
	"math"
	"strconv"
	"strings"
)

// The checks every metadata store makes before it stores or looks up, so that all drivers
// refuse the same input with the same error.

// CheckStorable reports whether d can be stored: it needs an id and a name.
func (d *Dataset) CheckStorable() error {
	switch {
	case d == nil:
		return Errorf(EINVALID, "dataset is missing")
	case d.ID == "":
		return FieldErrorf(EINVALID, "id", "dataset id is empty")
	case d.Name == "":
		return FieldErrorf(EINVALID, "name", "dataset name is empty")
	}
	return nil
}

// CheckStorable reports whether v can be stored: it needs a model name and a finite threshold.
func (v *ModelVersion) CheckStorable() error {
	switch {
	case v == nil:
		return Errorf(EINVALID, "model version is missing")
	case v.Model == "":
		return FieldErrorf(EINVALID, "model", "model name is empty")
	case math.IsNaN(v.Threshold) || math.IsInf(v.Threshold, 0):
		return FieldErrorf(EUNPROCESSABLE, "threshold", "threshold: got %v, want a finite number", v.Threshold)
	}
	return nil
}

// ParseDatasetRef splits a dataset reference "name@version"; hasVersion is false for a bare
// name (or id). A version that is not a positive integer is EINVALID.
func ParseDatasetRef(ref string) (name string, version int, hasVersion bool, err error) {
	name, v, ok := strings.Cut(ref, "@")
	if !ok {
		return ref, 0, false, nil
	}
	version, err = strconv.Atoi(v)
	if err != nil || version < 1 {
		return "", 0, false, Errorf(EINVALID, "dataset reference %q: got version %q, want a positive integer", ref, v)
	}
	return name, version, true, nil
}

// CheckEventKey reports whether an EventStore key is complete.
func CheckEventKey(consumer, id string) error {
	if consumer == "" {
		return FieldErrorf(EINVALID, "consumer", "consumer is empty")
	}
	if id == "" {
		return FieldErrorf(EINVALID, "id", "event id is empty")
	}
	return nil
}

// CheckEventKeys is CheckEventKey for each of ids.
func CheckEventKeys(consumer string, ids []string) error {
	for _, id := range ids {
		if err := CheckEventKey(consumer, id); err != nil {
			return err
		}
	}
	return nil
}
