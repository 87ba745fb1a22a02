//! Captures: what `collect` does with the packets it takes from the queue (pcap files, rotation,
//! progress). The queue itself is in [`crate::pqueue`].

pub mod collect;
