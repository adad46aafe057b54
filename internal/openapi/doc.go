// Package openapi imports OpenAPI 3.x and Swagger 2.0 documents as
// tollgate.v1.Api resources.
package openapi
