package config

import (
	"cmp"
	"time"
)

// ControlPlaneUsage is the enforcer's controlPlane.usage section: how the
// replica reports usage (requests per application, API, status class and
// minute) to its control plane.
type ControlPlaneUsage struct {
	Interval Duration `yaml:"interval"` // between reports; default 10s
	MaxRows  int      `yaml:"maxRows"`  // distinct rows held between reports; default 10000
}

// UsageSettings is the compiled controlPlane.usage section.
type UsageSettings struct {
	Interval time.Duration
	MaxRows  int
}

// Defaults and bounds of controlPlane.usage. An interval under 100ms
// would make reports of a request or two; maxRows bounds memory (a row
// holds two ids of up to 256 bytes).
const (
	DefaultUsageInterval = 10 * time.Second
	DefaultUsageMaxRows  = 10000
	minUsageInterval     = 100 * time.Millisecond
	maxUsageInterval     = time.Hour
	maxUsageMaxRows      = 1000000
)

func (c *compiler) usage(in ControlPlaneUsage) UsageSettings {
	out := UsageSettings{
		Interval: cmp.Or(time.Duration(in.Interval), DefaultUsageInterval),
		MaxRows:  cmp.Or(in.MaxRows, DefaultUsageMaxRows),
	}
	if out.Interval < minUsageInterval || out.Interval > maxUsageInterval {
		c.Addf("controlPlane.usage.interval", "between 100ms and 1h, got %v", out.Interval)
	}
	if out.MaxRows < 1 || out.MaxRows > maxUsageMaxRows {
		c.Addf("controlPlane.usage.maxRows", "between 1 and %d, got %d", maxUsageMaxRows, out.MaxRows)
	}
	return out
}

// UsageRetention is cp.yaml's usage section: how long the store keeps
// the usage replicas report.
type UsageRetention struct {
	Retention Duration `yaml:"retention"` // default 720h (30 days)
}

// UsageStorage is the compiled usage section of cp.yaml.
type UsageStorage struct {
	Retention time.Duration
}

// DefaultUsageRetention is how long usage is kept unless cp.yaml says.
const DefaultUsageRetention = 30 * 24 * time.Hour

// usageStorage compiles cp.yaml's usage section. Usage is purged hourly,
// so a retention under an hour would mean nothing.
func (c *compiler) usageStorage(in UsageRetention) UsageStorage {
	out := UsageStorage{Retention: cmp.Or(time.Duration(in.Retention), DefaultUsageRetention)}
	if out.Retention < time.Hour {
		c.Addf("usage.retention", "at least 1h, got %v", out.Retention)
	}
	return out
}
