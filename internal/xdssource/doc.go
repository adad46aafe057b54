// Package xdssource is the replica's side of the control plane: a Delta
// xDS client that subscribes to every kind of Tollgate resource, applies
// each response as one batch (compiled into a new model snapshot, or
// refused with a NACK and the previous state kept), persists what it
// applied to a state directory, and serves that state at start when the
// control plane cannot be reached.
//
// Resources of different kinds arrive in separate responses, so a
// subscription may arrive before its application: the model is compiled
// as a partial set (model.Input.Partial), where such a resource is held
// back and denies until what it refers to arrives.
//
// A response that is refused leaves the control plane believing the
// replica holds it; the replica therefore reopens its stream after a
// backoff, sending the versions it really holds, so that good resources
// that travelled with a bad one are not lost.
package xdssource
