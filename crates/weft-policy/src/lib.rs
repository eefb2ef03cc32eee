//! Validation and compilation of user resources (DESIGN §3): one module per kind with
//! its `Spec`, `validate` and `compile`. Pure: no I/O.
