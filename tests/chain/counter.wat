;; The counter the WASM tests and their golden roots pin (docs/examples/counter.wat
;; is the one users start from: the same contract answering JSON). It keeps a
;; count under the key "count" (8 bytes, little-endian) and answers it as those
;; 8 bytes. execute dispatches on the first character of the message's first key:
;;   {"increment": {}}  adds one          {"loop": {}}   runs until out of gas
;;   {"trap": {}}       traps              {"abort": {}}  aborts with "nope"
;;   {"focus": "<59-character CID>"}  stores the particle's focus (10^15 fixed point)
;; anything else, and every query, answers the count; a query {"write": {}} tries
;; to write (and traps: queries cannot).
(module
  (import "env" "db_read" (func $db_read (param i32 i32) (result i64)))
  (import "env" "db_write" (func $db_write (param i32 i32 i32 i32)))
  (import "env" "focus_of" (func $focus_of (param i32 i32) (result i64)))
  (import "env" "abort" (func $abort (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "count")
  (data (i32.const 8) "\"msg\":{\"")
  (data (i32.const 16) "nope")
  (data (i32.const 24) "focus")
  (global $heap (mut i32) (i32.const 4096))
  (func (export "allocate") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  ;; the byte after "msg":{" in the document at $p of length $n
  (func $key (param $p i32) (param $n i32) (result i32) (local $i i32)
    (block $done
      (loop $scan
        (br_if $done (i32.ge_u (i32.add (local.get $i) (i32.const 8)) (local.get $n)))
        (if (i32.and
              (i64.eq (i64.load (i32.add (local.get $p) (local.get $i))) (i64.load (i32.const 8)))
              (i32.const 1))
          (then (return
            (i32.load8_u (i32.add (i32.add (local.get $p) (local.get $i)) (i32.const 8))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (i32.const 0))
  (func $count (result i64) (local $v i64)
    (local.set $v (call $db_read (i32.const 0) (i32.const 5)))
    (if (result i64) (i64.lt_s (local.get $v) (i64.const 0))
      (then (i64.const 0))
      (else (i64.load (i32.wrap_i64 (i64.shr_u (local.get $v) (i64.const 32)))))))
  (func $set (param $c i64)
    (i64.store (i32.const 32) (local.get $c))
    (call $db_write (i32.const 0) (i32.const 5) (i32.const 32) (i32.const 8)))
  (func $answer (param $c i64) (result i64)
    (i64.store (i32.const 40) (local.get $c))
    (i64.or (i64.shl (i64.const 40) (i64.const 32)) (i64.const 8)))
  (func (export "instantiate") (param $p i32) (param $n i32) (result i64)
    (call $set (i64.const 0))
    (call $answer (i64.const 0)))
  (func (export "execute") (param $p i32) (param $n i32) (result i64) (local $k i32)
    (local.set $k (call $key (local.get $p) (local.get $n)))
    (if (i32.eq (local.get $k) (i32.const 105))  ;; i
      (then (call $set (i64.add (call $count) (i64.const 1)))))
    (if (i32.eq (local.get $k) (i32.const 108))  ;; l
      (then (loop $forever (br $forever))))
    (if (i32.eq (local.get $k) (i32.const 116))  ;; t
      (then (call $set (i64.const 99)) (unreachable)))
    (if (i32.eq (local.get $k) (i32.const 97))   ;; a
      (then (call $set (i64.const 98)) (call $abort (i32.const 16) (i32.const 4))))
    (if (i32.eq (local.get $k) (i32.const 102))  ;; f: focus of the CID ending the message
      (then (call $set (call $focus_of
        (i32.add (local.get $p) (i32.sub (local.get $n) (i32.const 62))) (i32.const 59)))))
    (call $answer (call $count)))
  (func (export "query") (param $p i32) (param $n i32) (result i64)
    (if (i32.eq (call $key (local.get $p) (local.get $n)) (i32.const 119))  ;; w: try a write
      (then (call $set (i64.const 7))))
    (call $answer (call $count))))
