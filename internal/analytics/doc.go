// Package analytics owns Tollgate's Prometheus metrics (DESIGN §5).
package analytics
