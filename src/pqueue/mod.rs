//! pqueue (under construction)
