package config

import (
	"net/url"
)

func (c *compiler) analytics(in Analytics) AnalyticsSettings {
	s := AnalyticsSettings{Events: in.Events, FileMaxMB: 100, FileBackups: 5}
	switch in.Events {
	case "", "none":
		s.Events = ""
	case "stdout":
	default:
		s.Events = c.path(in.Events)
	}
	if in.FileMaxMB != 0 {
		s.FileMaxMB = in.FileMaxMB
	}
	if in.FileBackups != 0 {
		s.FileBackups = in.FileBackups
	}
	if s.FileMaxMB < 1 {
		c.Addf("analytics.fileMaxMB", "at least 1")
	}
	if s.FileBackups < 0 {
		c.Addf("analytics.fileBackups", "cannot be negative")
	}
	return s
}

func (c *compiler) tracing(in Tracing) TracingSettings {
	s := TracingSettings{OTLPEndpoint: in.OTLPEndpoint, SampleRatio: 0.01}
	if in.SampleRatio != nil {
		s.SampleRatio = *in.SampleRatio
		if s.SampleRatio < 0 || s.SampleRatio > 1 {
			c.Addf("tracing.sampleRatio", "want a ratio between 0 and 1")
		}
	}
	if s.OTLPEndpoint != "" {
		u, err := url.Parse(s.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.Addf("tracing.otlpEndpoint", "want the collector's OTLP/gRPC URL: http://host:4317 (plaintext) or https://host:4317, got %q", s.OTLPEndpoint)
		}
	}
	return s
}
