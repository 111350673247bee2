pub mod after_run;
