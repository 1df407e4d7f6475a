package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A client that sends its body one byte at a time, or never finishes its
// headers, is cut off once the read timeout passes; others are served.
func TestSlowClientsAreCutOff(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok\n")
	})
	srv := newServer(h, httpTimeouts{header: time.Second, read: 2 * time.Second, write: 2 * time.Second, idle: 2 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	addr := ln.Addr().String()

	closedWithin := func(t *testing.T, send func(c net.Conn) error) time.Duration {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		for time.Since(start) < 20*time.Second {
			if send(c) != nil {
				return time.Since(start)
			}
			time.Sleep(300 * time.Millisecond)
		}
		t.Fatal("the slow client was never cut off")
		return 0
	}
	// Slow body: headers promise 1000 bytes, one arrives every 300 ms.
	sentHeaders := false
	took := closedWithin(t, func(c net.Conn) error {
		if !sentHeaders {
			sentHeaders = true
			_, err := io.WriteString(c, "POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
			return err
		}
		_, err := c.Write([]byte("x"))
		return err
	})
	if took > 10*time.Second {
		t.Errorf("slow body cut off after %s", took)
	}
	// Slow headers.
	took = closedWithin(t, func(c net.Conn) error {
		_, err := c.Write([]byte("X"))
		return err
	})
	if took > 10*time.Second {
		t.Errorf("slow headers cut off after %s", took)
	}
	// A normal request is served.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, "200") {
		t.Errorf("normal request: %q %v", line, err)
	}
}
