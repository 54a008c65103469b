// Command rate sends POST requests at a fixed rate (open loop: a request is sent on schedule
// whether or not earlier ones have been answered) and prints the latency percentiles as one
// JSON line, like bench/serve/post.lua. bench/shadow/run uses it to measure latency at a
// load below saturation, where what shadow scoring adds to the request path shows.
//
//	rate -url URL -body FILE -rps 500 -d 20s
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "target URL")
	bodyFile := flag.String("body", "", "request body file (JSON)")
	rps := flag.Int("rps", 500, "requests per second")
	d := flag.Duration("d", 20*time.Second, "duration")
	flag.Parse()
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatal(err)
	}
	body = bytes.TrimSpace(body)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	var mu sync.Mutex
	var lat []time.Duration
	errors := 0
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(*rps)
	start := time.Now()
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= *d {
			break
		}
		time.Sleep(time.Until(at))
		wg.Go(func() {
			resp, err := client.Post(*url, "application/json", bytes.NewReader(body))
			ok := err == nil
			if ok {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok = resp.StatusCode == 200
			}
			// From the scheduled send time: a late send counts as latency (no coordinated omission).
			took := time.Since(at)
			mu.Lock()
			if ok {
				lat = append(lat, took)
			} else {
				errors++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	secs := time.Since(start).Seconds()
	fmt.Printf(`{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"errors":%d}`+"\n",
		len(lat), secs, float64(len(lat))/secs, pct(0.5), pct(0.9), pct(0.99), errors)
}
