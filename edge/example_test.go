package edge_test

import (
	"encoding/json"
	"fmt"
	"log"

	"github.com/cloudmedical/pulse/edge"
)

// downloads stands for what an app ships or fetches: a bundle (GET
// /v1/models/heart-disease/versions/2/bundle) and the server's public keys (GET
// /v1/signing-keys, best pinned in the app). Here the test setup makes both.
func downloads() (bundle, keySet []byte) {
	bundle, err := buildBundle("logreg", nil)
	if err != nil {
		log.Fatal(err)
	}
	keySet, err = json.Marshal(fixture.signer.JWKSet())
	if err != nil {
		log.Fatal(err)
	}
	return bundle, keySet
}

// An app verifies the bundle once, then scores offline.
func Example() {
	bundle, keySet := downloads()

	keys, err := edge.ParseJWKSet(keySet)
	if err != nil {
		log.Fatal(err)
	}
	model, err := edge.Open(bundle, keys...) // refuses a bundle that was altered or signed by another key
	if err != nil {
		log.Fatal(err)
	}
	man := model.Manifest()
	fmt.Printf("%s version %d (%s), signed by key %s\n", man.Model, man.Version, man.Algorithm, man.KeyID)

	p, err := model.Predict([]byte(`{"age": 63, "sex": 1, "cp": 1, "trestbps": 145, "chol": 233, "fbs": 1,
		"restecg": 2, "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": 6}`))
	if err != nil {
		log.Fatal(err) // an *edge.Error naming the field, as REST's problem details do
	}
	fmt.Printf("label %d: probability %.3f, threshold %.2f\n", p.Label, p.Probability, p.Threshold)

	// Values already parsed skip JSON: one per input, in Inputs() order; a zero Value is missing.
	values := make([]edge.Value, len(model.Inputs()))
	values[0] = edge.Value{Num: 63, Present: true} // age
	p, err = model.PredictValues(values)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("age alone: label %d\n", p.Label)
	// Output:
	// heart-disease version 2 (logreg), signed by key fe812c12f3ab4ce6
	// label 0: probability 0.174, threshold 0.50
	// age alone: label 0
}
