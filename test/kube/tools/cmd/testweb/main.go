// Command testweb is the HTTP server of the test node's web image
// (test/kube/node-images.sh), for tests that need a real pod to answer:
//
//	GET /        200, the body is $MESSAGE (default: the host name) and a newline
//	GET /ready   200 "ready" unless $READY is "no": then 503
//	GET /healthz 200 "ok"
//
// It listens on :$PORT (default 8080) and stops on SIGTERM. Static, no
// dependencies.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	msg := os.Getenv("MESSAGE")
	if msg == "" {
		msg, _ = os.Hostname()
	}
	ready := os.Getenv("READY") != "no"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, msg) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if !ready {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "testweb:", err)
		os.Exit(1)
	}
}
