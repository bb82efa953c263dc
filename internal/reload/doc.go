// Package reload swaps TLS material and policy in while the service runs: a Watcher polls
// groups of files (and reacts to SIGHUP) and takes a change only once it is whole and valid.
package reload
