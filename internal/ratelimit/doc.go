// Package ratelimit gives every caller identity its own token bucket, so that one noisy
// client is told ResourceExhausted without slowing anyone else down.
package ratelimit
