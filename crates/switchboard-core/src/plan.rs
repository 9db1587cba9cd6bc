//! Planning: the ordered list of candidates for one delivery, and why the others were left out.
