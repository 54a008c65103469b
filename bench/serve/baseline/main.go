// Command baseline is the reference point of bench/serve: a bare net/http handler that decodes
// the same JSON body as /predict into a map and answers a small JSON object. The ratio of
// Pulse's throughput to this one's, measured in the same run, is what the benchmark reports.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	http.HandleFunc("POST /predict", func(w http.ResponseWriter, r *http.Request) {
		var features map[string]any
		if err := json.NewDecoder(r.Body).Decode(&features); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"fields":%d,"probability":0.5}`, len(features))
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "msg=listening addr=%s\n", ln.Addr())
	log.Fatal(http.Serve(ln, nil))
}
