"""Harness for tests of focusflow and of what is built on it: real node processes
on loopback, chains in one process, and the web page in a headless browser.

The project's own tests and benchmarks use it, and so may a user's tests
(docs/testing.md). Its modules, each imported on its own (nothing here is
loaded by the package itself, and no product code imports this package):

* :mod:`focusflow.testing.devnet`: ``start_devnet`` runs ``focusflow devnet``
  as a process on a free port with a temporary home; ``Devnet`` talks to it
  over HTTP; ``signed``, ``wait_tx`` and ``wait_height`` for transactions;
* :mod:`focusflow.testing.testnet`: ``LocalTestnet`` runs ``focusflow testnet``
  (validators and full nodes as processes), kills, restarts and queries them;
* :mod:`focusflow.testing.byzantine`: ``Byzantine`` swaps a testnet validator
  for a byzantine peer process (:mod:`focusflow.testing.byzantine_peer`: junk
  votes to one target, or lies about its height), and reads who banned whom;
* :mod:`focusflow.testing.chains`: keys, a genesis, chains opened in this
  process, particles, links and signed transactions;
* :mod:`focusflow.testing.lightnode`: a node's real API over such a chain,
  served on loopback, honest or made to lie (``Lie``);
* :mod:`focusflow.testing.web`: serving an app on loopback, finding Chromium,
  and a chain whose answers the web page's verified mode checks;
* :mod:`focusflow.testing.process`: where node processes import focusflow
  from and their environment.

Fault injection (a node that withholds data, builds bad squares, serves
corrupt blobs) is ``focusflow.node.faults.FaultPlan``, handed to a node process
as ``start_devnet(home, "--fault-plan", plan.to_json())``.
"""
