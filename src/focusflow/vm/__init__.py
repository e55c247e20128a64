"""The execution plane: virtual machines over prefix-scoped views of the one state.

``evm`` runs Ethereum transactions and calls with py-evm; ``evm_state`` maps
the EVM's accounts, code and storage onto the chain's keys.
"""
