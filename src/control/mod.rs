//! placeholder, replaced by the module's author
